"""EventStream as an ASGI app: what it sends, what it does when the client's socket fails, and that it always cleans up."""
from __future__ import annotations

import asyncio

import pytest

from server.api.streaming import SSE_DONE, EventStream, sse_json


class Client:
    """An ASGI peer: records what is sent; `fail_at` makes that send raise (the socket broke)."""

    def __init__(self, fail_at: int | None = None):
        self.sent: list[dict] = []
        self.fail_at = fail_at
        self.gone = asyncio.Event()

    async def send(self, message: dict) -> None:
        if self.fail_at is not None and len(self.sent) == self.fail_at:
            raise OSError("connection reset")
        self.sent.append(message)

    async def receive(self) -> dict:
        await self.gone.wait()
        return {"type": "http.disconnect"}


SCOPE = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}


def _stream(chunks: list[bytes], log: list[str]):
    async def events():
        try:
            for c in chunks:
                yield c
        finally:
            log.append("events closed")

    async def on_close():
        log.append("on_close")

    return EventStream(events(), on_close=on_close)


def test_a_stream_sends_its_head_each_chunk_and_one_closing_body():
    log: list[str] = []
    chunks = [sse_json({"n": i}) for i in range(3)] + [SSE_DONE]
    client = Client()
    asyncio.run(_stream(chunks, log)(SCOPE, client.receive, client.send))
    start, *bodies = client.sent
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"x-accel-buffering"] == b"no" and headers[b"cache-control"] == b"no-store"
    assert [b["body"] for b in bodies] == chunks + [b""]
    assert [b["more_body"] for b in bodies] == [True] * len(chunks) + [False]
    assert log == ["events closed", "on_close"]


@pytest.mark.parametrize("fail_at", [0, 1, 3])
def test_a_failed_send_ends_the_stream_without_another_send_and_still_cleans_up(fail_at):
    # 0: the head itself, 1: the first chunk, 3: a later chunk.
    log: list[str] = []
    chunks = [sse_json({"n": i}) for i in range(5)]
    client = Client(fail_at=fail_at)
    with pytest.raises(OSError):
        asyncio.run(_stream(chunks, log)(SCOPE, client.receive, client.send))
    assert len(client.sent) == fail_at  # nothing after the send that failed
    # A generator that never started has no cleanup of its own to run; on_close always runs.
    assert log == (["on_close"] if fail_at == 0 else ["events closed", "on_close"])


def test_a_client_that_leaves_ends_a_waiting_stream_and_cleans_up():
    log: list[str] = []

    async def events():
        try:
            yield sse_json({"n": 0})
            await asyncio.sleep(60)  # waiting for a token that does not come
            yield sse_json({"n": 1})
        finally:
            log.append("events closed")

    async def on_close():
        log.append("on_close")

    async def main():
        client = Client()
        task = asyncio.create_task(EventStream(events(), on_close=on_close)(SCOPE, client.receive, client.send))
        while len(client.sent) < 2:
            await asyncio.sleep(0.01)
        client.gone.set()
        await asyncio.wait_for(task, 5)
        return client

    client = asyncio.run(main())
    assert [m.get("body") for m in client.sent[1:]] == [sse_json({"n": 0})]  # no closing body to a gone client
    assert log == ["events closed", "on_close"]
