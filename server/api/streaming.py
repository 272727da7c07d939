"""Server-sent events: OpenAI's `data: {json}` framing, `[DONE]`, and cleanup that always runs."""
from __future__ import annotations

import json
import logging
import re
from typing import Any, AsyncIterator, Awaitable, Callable

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger("llamaslots.api")

DONE = "[DONE]"
# Comment lines keep proxies from closing a stream that waits long for its first token;
# OpenAI clients skip them.
PING_SECONDS = 15
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line ends SSE knows


def sse_event(data: str, event: str | None = None) -> bytes:
    """One SSE event, encoded once: what sse-starlette's ServerSentEvent writes with "\n" line
    ends, without building one per chunk (a stream sends one event per token)."""
    if "\n" in data or "\r" in data:  # never for JSON; kept right for any other text
        body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    else:
        body = f"data: {data}\n"
    head = f"event: {_LINE_BREAK.sub('', event)}\n" if event is not None else ""
    return f"{head}{body}\n".encode("utf-8")


# One encoder for every chunk: json.dumps with these options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def wire_json(obj: Any) -> str:
    """JSON as the answers carry it: compact, UTF-8 kept as is."""
    return "null" if obj is None else _ENCODER.encode(obj)


def sse_json(obj: Any) -> bytes:
    """One SSE event carrying a JSON object."""
    return sse_event(wire_json(obj))


SSE_DONE = sse_event(DONE)


class EventStream(EventSourceResponse):
    """An SSE response that closes its event iterator and then calls `on_close`, however it ends.

    The stream holds resources acquired before the response started (the model handle), so
    they are released here even when the client vanished before the first byte (the iterator
    then never ran, and its own `finally` would never run).
    """

    def __init__(
        self,
        events: AsyncIterator[bytes],
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        # "\n" line ends as OpenAI and LocalAI send them; some hand-written clients split on "\n\n".
        super().__init__(events, sep="\n", ping=PING_SECONDS)
        self._events = events
        self._on_close = on_close

    async def _stream_response(self, send: Send) -> None:
        # sse-starlette's loop, less what our chunks do not need per token: they are bytes
        # already (no ensure_bytes), no debug line, no timeout wrapper. The state it keeps for
        # __call__'s ending (started, interrupted, complete, active) is kept the same way; the
        # events are closed in __call__ below however this ends.
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        self._response_started = True
        async for chunk in self.body_iterator:
            try:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except BaseException:
                self._send_interrupted = True  # no closing send on a transport in an unknown state
                raise
        async with self._send_lock:  # as sse-starlette: a ping may be sending
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except BaseException:
                self._send_interrupted = True
                raise
            self._response_complete = True
            self.active = False

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        # No per-send timeout is set: skip sse-starlette's cancel scope around every chunk
        # (measured: 5% of the front-end's time in a one-stream benchmark).
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: a server shutdown cancels this task, and a handle must still go back.
            with anyio.CancelScope(shield=True):
                aclose = getattr(self._events, "aclose", None)
                if aclose is not None:
                    try:
                        await aclose()
                    except Exception:  # noqa: BLE001 - cleanup must reach on_close
                        logger.exception("closing an event stream failed")
                if self._on_close is not None:
                    await self._on_close()
