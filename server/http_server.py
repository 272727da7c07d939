"""Runs the app under uvicorn, with a shutdown that lets the models finish their work first."""
from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from sse_starlette.sse import AppStatus


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose shutdown first lets the models finish what they are doing.

    Left alone, sse-starlette cuts every stream mid-answer on SIGTERM (the client sees an
    incomplete chunked body) while non-streamed requests run on. Here both kinds get `grace`
    seconds to finish; then the manager cancels what is left and each client is told so (a
    last event carrying a 503 error on a stream, a 503 response otherwise). No new request
    starts meanwhile: uvicorn stops listening, and the manager refuses what was still waiting.
    """

    def __init__(self, config: uvicorn.Config, manager: Any, grace: float) -> None:
        super().__init__(config)
        self._manager = manager
        self._grace = grace
        AppStatus.disable_automatic_graceful_drain()

    async def shutdown(self, sockets: Any = None) -> None:
        drain = asyncio.create_task(self._drain())
        try:
            await super().shutdown(sockets)
        finally:
            if self.force_exit and not drain.done():
                # A second Ctrl-C / SIGTERM: stop now. The models' processes are daemonic and
                # end with this one.
                drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            await self._manager.shutdown(self._grace)
        finally:
            # A stream that holds no model must not keep the process up either.
            AppStatus.should_exit = True


KEEP_ALIVE_SECONDS = 5


def serve(app: Any, manager: Any, host: str, port: int, grace: float) -> None:
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning",
        # An idle keep-alive connection is closed after this many seconds (a half-sent body
        # is timed out by server.api.body).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # A backstop only: the manager ends every request within `grace`.
        timeout_graceful_shutdown=int(grace) + 15,
    )
    DrainingServer(config, manager, grace).run()
