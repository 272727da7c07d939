"""Liveness and readiness probes (/healthz always 200; /readyz 503 until the manager is ready)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.api.errors import ErrorCatchingRoute

router = APIRouter(route_class=ErrorCatchingRoute)


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    # A manager may preload models in the background after start(); it then says so with
    # a `ready` attribute (LocalAI v4: 503 {"status":"starting"} during preload).
    state = request.app.state
    if getattr(state, "ready", False) and getattr(state.manager, "ready", True):
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "starting"}, status_code=503)
