"""The body guard on its own: half-sent bodies time out (408), size is checked while reading (413)."""
from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from server.api.body import BodyGuardMiddleware, decode_json_object
from server.api.errors import ErrorCatchingRoute, install_error_handlers


def app_with_guard(limit: int, timeout: float):
    app = FastAPI()
    install_error_handlers(app)
    app.router.route_class = ErrorCatchingRoute

    @app.post("/echo")
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"n": len(await request.body())})

    return BodyGuardMiddleware(app, limit=limit, timeout=timeout)


async def call(app, chunks: list[bytes], *, hang_after: bool, headers=()) -> tuple[int, dict]:
    pending = list(chunks)
    sent: list[dict] = []

    async def receive():
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending) or hang_after}
        await asyncio.Event().wait()  # a client that stopped sending, connection still open

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), *headers], "http_version": "1.1",
             "scheme": "http", "server": ("t", 80), "client": ("c", 1), "root_path": ""}
    await asyncio.wait_for(app(scope, receive, send), 5)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_a_half_sent_body_times_out_with_408():
    app = app_with_guard(limit=1 << 20, timeout=0.2)
    status, body = asyncio.run(call(app, [b'{"a":'], hang_after=True))
    assert status == 408 and "nothing came for 0.2s" in body["error"]["message"]


def test_size_is_checked_while_reading_and_by_content_length():
    app = app_with_guard(limit=10, timeout=5)
    status, body = asyncio.run(call(app, [b"12345", b"67890", b"x"], hang_after=False))
    assert status == 413 and "upload limit" in body["error"]["message"]
    status, _ = asyncio.run(call(app, [b"12345"], hang_after=False, headers=[(b"content-length", b"999")]))
    assert status == 413
    status, body = asyncio.run(call(app, [b"12345", b"67890"], hang_after=False))
    assert status == 200 and body == {"n": 10}


def test_json_checks_name_depth_surrogates_and_constants():
    import pytest

    from server.errors import InvalidRequest

    for raw, words in [(b"[]", "JSON array"), (b'{"a":' * 70 + b"1" + b"}" * 70, "deeper than 64"),
                       (b'{"a":-Infinity}', "-Infinity"), (b'{"x":{"\\udc00":1}}', "x.\\udc00"),
                       (b"\xff", "not UTF-8"), (b"  ", "empty")]:
        with pytest.raises(InvalidRequest) as info:
            decode_json_object(raw)
        assert words in info.value.message, (raw, info.value.message)
    assert decode_json_object(b'{"a": [1, {"b": "\\ud83e\\udd99"}]}') == {"a": [1, {"b": "\U0001f999"}]}


def test_a_get_body_is_bounded_too_and_its_content_type_does_not_matter():
    app = app_with_guard(limit=10, timeout=5)

    async def get(chunks, content_type=b"text/plain"):
        pending = list(chunks)
        sent: list[dict] = []

        async def receive():
            body = pending.pop(0) if pending else b""
            return {"type": "http.request", "body": body, "more_body": bool(pending)}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/nothing", "raw_path": b"/nothing", "query_string": b"",
                 "headers": [(b"content-type", content_type), (b"content-length", b"999")], "http_version": "1.1",
                 "scheme": "http", "server": ("t", 80), "client": ("c", 1), "root_path": ""}
        await app(scope, receive, send)
        return next(m["status"] for m in sent if m["type"] == "http.response.start")

    assert asyncio.run(get([b"x" * 999])) == 413


def test_the_body_timeout_ends_with_the_body_not_with_the_answer():
    # Disconnect watchers keep calling receive() for as long as the answer takes; the body
    # timeout must not fire on them (it cut every answer longer than 30 s).
    from server.api.generation import cancel_on_disconnect

    app = FastAPI()
    install_error_handlers(app)
    app.router.route_class = ErrorCatchingRoute

    @app.post("/slow")
    async def slow(request: Request) -> JSONResponse:
        await request.body()
        await cancel_on_disconnect(request, lambda: asyncio.sleep(0.6))
        return JSONResponse({"ok": True})

    guarded = BodyGuardMiddleware(app, limit=1 << 20, timeout=0.2)

    async def run():
        sent: list[dict] = []
        chunks = [b'{"a": 1}']

        async def receive():
            if chunks:
                return {"type": "http.request", "body": chunks.pop(), "more_body": False}
            await asyncio.Event().wait()  # the client stays, waiting for its answer

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/slow", "raw_path": b"/slow", "query_string": b"",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", b"8")],
                 "http_version": "1.1", "scheme": "http", "server": ("t", 80), "client": ("c", 1), "root_path": ""}
        await asyncio.wait_for(guarded(scope, receive, send), 5)
        return next(m["status"] for m in sent if m["type"] == "http.response.start")

    assert asyncio.run(run()) == 200


def test_a_post_body_must_say_it_is_json():
    app = app_with_guard(limit=1 << 20, timeout=5)
    for ctype, status in [(None, 415), (b"application/json; charset=utf-8", 200), (b"application/vnd.x+json", 200),
                          (b"text/plain", 415)]:
        headers = [(b"content-length", b"2")] + ([(b"content-type", ctype)] if ctype else [])

        async def go():
            sent: list[dict] = []

            async def receive():
                return {"type": "http.request", "body": b"{}", "more_body": False}

            async def send(message):
                sent.append(message)

            scope = {"type": "http", "method": "POST", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
                     "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("t", 80),
                     "client": ("c", 1), "root_path": ""}
            await app(scope, receive, send)
            return next(m["status"] for m in sent if m["type"] == "http.response.start")

        assert asyncio.run(go()) == status, ctype
