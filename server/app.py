"""Builds the FastAPI application: routes, error handlers, API-key check, manager lifespan."""
from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from server.api import health, openai, operations, status_page
from server.api.body import BodyGuardMiddleware
from server.api.errors import error_response, install_error_handlers
from server.api.observe import RequestMetricsMiddleware
from server.api.responses import ResponseStore
from server.errors import Unauthorized

logger = logging.getLogger("llamaslots.api")

# Probes stay reachable without a key, as in LocalAI.
_PUBLIC_PATHS = {"/healthz", "/readyz"}
DEFAULT_UPLOAD_LIMIT_MB = 15


def create_app(manager: Any, settings: Any) -> FastAPI:
    """The HTTP app over `manager` (a server.manager.ModelManager).

    Reads from `settings` (any object; missing attributes mean "off"): `api_keys` (iterable of
    accepted keys; empty = no auth), `cors` (bool), `cors_allow_origins` (comma list or
    iterable), `disable_metrics_endpoint` and `disable_webui` (bools) and `upload_limit` (MB). The
    metrics registry is the manager's.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await manager.aclose()

    app = FastAPI(title="llamaslots", lifespan=lifespan)
    app.state.manager = manager
    app.state.settings = settings
    app.state.ready = False
    app.state.responses = ResponseStore()
    app.state.metrics = manager.metrics

    install_error_handlers(app)
    # The router tries routes in order, each a few Python calls: the generation routes first.
    app.include_router(openai.router)
    app.include_router(health.router)
    app.include_router(operations.router)
    if not getattr(settings, "disable_metrics_endpoint", False):
        app.include_router(operations.metrics_router)
    webui = not getattr(settings, "disable_webui", False)
    if webui:
        app.include_router(status_page.router)

    # Innermost of the middlewares: a body is checked only once the key was.
    app.add_middleware(BodyGuardMiddleware, limit=_upload_limit(settings))
    keys = _api_keys(settings)
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys, login_page=webui)
    if getattr(settings, "cors", False):
        app.add_middleware(
            CORSMiddleware,
            allow_origins=_origins(getattr(settings, "cors_allow_origins", None)),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Outermost: a request refused for its key is counted too.
    app.add_middleware(RequestMetricsMiddleware, metrics=manager.metrics)
    return app


def _upload_limit(settings: Any) -> int:
    """LocalAI's --upload-limit (MB, default 15), here the limit of every request body."""
    mb = getattr(settings, "upload_limit", None) or DEFAULT_UPLOAD_LIMIT_MB
    return int(mb) << 20


def _api_keys(settings: Any) -> tuple[str, ...]:
    keys = getattr(settings, "api_keys", None) or ()
    if isinstance(keys, str):
        keys = keys.split(",")
    return tuple(k.strip() for k in keys if k and k.strip())


def _origins(value: Any) -> list[str]:
    if not value:
        return ["*"]
    if isinstance(value, str):
        value = value.split(",")
    return [o.strip() for o in value if o.strip()]


class ApiKeyMiddleware:
    """Rejects requests without one of the keys, 401. The key comes as `Authorization: Bearer`,
    `x-api-key` or `xi-api-key` (as in LocalAI v4), or in the `token` cookie that the status
    page's login form sets (a browser cannot send a header for a page it opens)."""

    def __init__(self, app: ASGIApp, keys: Iterable[str], login_page: bool = True) -> None:
        self.app = app
        self.keys = tuple(keys)
        self.login_page = login_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if scope["method"] == "OPTIONS" or self._accepted(request):
            await self.app(scope, receive, send)
            return
        if self.login_page and scope["path"] == "/" and "text/html" in request.headers.get("accept", ""):
            # A person opening the status page: ask for the key instead of showing JSON.
            login = HTMLResponse(status_page.page("login.html"), status_code=401)
            await login(scope, receive, send)
            return
        response = error_response(
            Unauthorized("missing or wrong API key: send it as 'Authorization: Bearer <key>'")
        )
        await response(scope, receive, send)

    def _accepted(self, request: Request) -> bool:
        given = request.headers.get("x-api-key", "") or request.headers.get("xi-api-key", "")
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        elif not given:
            # The login page stores the key percent-encoded; Starlette hands cookies over raw.
            given = unquote(request.cookies.get("token", ""))
        # compare_digest: no timing hint about how much of a key matched.
        return any(hmac.compare_digest(given.encode(), key.encode()) for key in self.keys)
