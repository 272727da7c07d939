"""Counts and times every HTTP request (by model, endpoint and status) for /metrics and the status page."""
from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import Metrics, RequestRecord

# An error body is read for its message only up to this size (they are small JSON objects).
_ERROR_BODY_LIMIT = 4096
# Polls (probes, scrapes, the status page's own refreshes) are counted but kept off the
# recent-requests list, which they would otherwise fill within seconds.
_POLLS = frozenset({"/healthz", "/readyz", "/metrics", "/system", "/slots", "/requests", "/backend/monitor", "/",
                    "/favicon.ico"})


def note_model(request: Request, name: str) -> None:
    """Say which model a request is for: its metrics and its line on the status page name it."""
    request.state.model = name


class RequestMetricsMiddleware:
    """Sees each request end to end, a stream's last byte included. The endpoint is the route's
    path template (unknown paths are one label, so a scanner cannot grow the label set)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        start = time.monotonic()
        status = 500
        error_body = bytearray()

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and status >= 400:
                if len(error_body) < _ERROR_BODY_LIMIT:
                    error_body.extend(message.get("body", b"")[: _ERROR_BODY_LIMIT - len(error_body)])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            model = str(scope["state"].get("model") or "")
            method = scope.get("method", "")
            self.metrics.request_done(RequestRecord(
                at=time.time(), method=method, endpoint=endpoint, model=model, status=status,
                seconds=time.monotonic() - start, error=_error_message(bytes(error_body)) if status >= 400 else "",
            ), listed=not (method == "GET" and endpoint in _POLLS and status < 400))


def _error_message(body: bytes) -> str:
    try:
        obj = json.loads(body)
        return str(obj["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")
