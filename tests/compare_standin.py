"""A stand-in for LocalAI in the compare tests: each of the field note's failures on cue (a word in the prompt)."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.serving import free_port

RPC_CANCELED = {"error": {"code": 500, "message": "could not load model: rpc error: code = Canceled desc = ",
                          "type": ""}}

# cue word -> (pieces of the answer, finish_reason)
SCRIPTS = {
    "leak": (["Tokyo", " is nice.", "</s>"], "stop"),
    "inst": (["Sure, here it is.", " [/INST]"], "stop"),
    "cut": (["Kyoto has three attractions:", " the temples, the"], "stop"),
    "long": (["word"] + [" word"] * 7, "length"),
    "empty": ([], "stop"),
}


class StandIn:
    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "StandIn":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("stand-in did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = body.get("model") or "m"
        cue = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        # LocalAI with a single active backend: a request for another model while one runs fails.
        others = [m for m, n in self.in_flight.items() if n and m != model]
        self.in_flight[model] = self.in_flight.get(model, 0) + 1
        try:
            await asyncio.sleep(0.15)
            if others or "rpc" in cue:
                return JSONResponse(RPC_CANCELED, status_code=500)
            if cue == "garbled":  # not the OpenAI shape at all
                if body.get("stream"):
                    return StreamingResponse(iter([b'data: {"choices": [1]}\n\n']), media_type="text/event-stream")
                return JSONResponse({"choices": "oops"})
            pieces, finish = SCRIPTS.get(cue, (["Hello", " world!"], "stop"))
            if cue == "drift":
                pieces = ["Alpha", " beta."] if body.get("stream") else ["Alpha", " gamma."]
            if body.get("stream"):
                return StreamingResponse(self._stream(pieces, finish, broken=cue == "broken"),
                                         media_type="text/event-stream")
            return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                                              "finish_reason": finish}],
                                 "usage": {"completion_tokens": len(pieces)}})
        finally:
            self.in_flight[model] -= 1

    async def _stream(self, pieces: list[str], finish: str, broken: bool) -> AsyncIterator[bytes]:
        for i, piece in enumerate(pieces):
            yield _sse({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            if broken and i == 0:
                return  # the connection ends: no finish_reason, no [DONE]
        yield _sse({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        yield b"data: [DONE]\n\n"


def _sse(obj: dict) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()
