"""A client that leaves cancels its generation; concurrent streams run side by side, uncut."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from server.engine.types import TextDelta
from tests.api.conftest import sse_events
from tests.api.fakes import model_config, Call, FakeHandle, Hang, Sleep, script_text

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Hi"}]


class AsgiCall:
    """Drives the app as an ASGI server would, with a client that can disconnect on cue."""

    def __init__(self, app, path: str, body: dict):
        self.app = app
        self.body = json.dumps(body).encode()
        self.path = path
        self.gone = asyncio.Event()
        self.sent: list[dict] = []
        self._body_sent = False

    async def receive(self) -> dict:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    async def run(self) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": self.path, "raw_path": self.path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
            "client": ("127.0.0.1", 5000), "server": ("test", 80),
        }
        await asyncio.wait_for(self.app(scope, self.receive, self.send), timeout=5)

    def body_text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body").decode()


async def test_stream_disconnect_cancels_generation(app, handle, manager):
    call = AsgiCall(app, "/v1/chat/completions", {"messages": MESSAGES, "stream": True})
    # The client leaves after the first token; the engine is still generating.
    handle.script = [TextDelta("first"), Call(call.gone.set), Hang()]
    await call.run()
    assert handle.cancelled == 1 and handle.completed == 0
    assert manager.held == 0
    assert '"content":"first"' in call.body_text()
    assert "[DONE]" not in call.body_text()


@pytest.mark.parametrize("stream", [True, False])
async def test_disconnect_cancels_every_choice(app, handle, manager, stream):
    call = AsgiCall(app, "/v1/chat/completions", {"messages": MESSAGES, "stream": stream, "n": 3})
    handle.script = [TextDelta("first"), Sleep(0.05), Call(call.gone.set), Hang()]
    await call.run()
    assert len(handle.requests) == 3
    assert handle.cancelled == 3 and handle.completed == 0
    assert manager.held == 0


@pytest.mark.parametrize("stream", [True, False])
async def test_a_client_that_leaves_while_its_model_loads_stops_waiting(app, handle, manager, stream):
    manager.load_gate = asyncio.Event()  # never set: the model is still loading
    call = AsgiCall(app, "/v1/chat/completions", {"messages": MESSAGES, "stream": stream})
    task = asyncio.create_task(call.run())
    await asyncio.sleep(0.05)
    call.gone.set()
    await asyncio.wait_for(task, 5)
    assert call.sent[0]["status"] == 499
    assert handle.requests == [] and manager.acquired == [] and manager.held == 0


async def test_stream_disconnect_before_first_token(app, handle, manager):
    call = AsgiCall(app, "/v1/completions", {"prompt": "x", "stream": True})
    handle.script = [Call(call.gone.set), Hang()]
    await call.run()
    assert handle.cancelled == 1
    assert manager.held == 0


async def test_non_stream_disconnect_cancels_generation(app, handle, manager):
    call = AsgiCall(app, "/v1/chat/completions", {"messages": MESSAGES})
    handle.script = [TextDelta("a"), Call(call.gone.set), Hang()]
    await call.run()
    assert call.sent[0]["status"] == 499
    assert handle.cancelled == 1 and handle.completed == 0
    assert manager.held == 0


async def test_non_stream_answer_is_not_cancelled_by_its_own_completion(app, handle, manager):
    call = AsgiCall(app, "/v1/chat/completions", {"messages": MESSAGES})
    handle.script = script_text("ok")
    await call.run()
    assert handle.completed == 1 and handle.cancelled == 0
    assert json.loads(call.body_text())["choices"][0]["message"]["content"] == "ok"


async def test_concurrent_streams_are_not_cut(app, manager):
    # Two models, two streams whose tokens interleave in time: each gets all of its tokens.
    slow_a = FakeHandle(model_config("a"), [*sum(([Sleep(0.005), TextDelta(f"a{i}")] for i in range(20)), []),
                                          *script_text()[-1:]])
    slow_b = FakeHandle(model_config("b"), [*sum(([Sleep(0.004), TextDelta(f"b{i}")] for i in range(20)), []),
                                          *script_text()[-1:]])
    manager.handles.update({"a": slow_a, "b": slow_b})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        async def stream(model: str) -> list:
            r = await c.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True})
            return sse_events(r.text)

        results = await asyncio.gather(stream("a"), stream("b"), stream("a"))
    for model, events in zip("aba", results):
        assert events[-1] == "[DONE]"
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert text == "".join(f"{model}{i}" for i in range(20))
    assert manager.held == 0
