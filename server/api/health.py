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
    # `loading` names the models being loaded now and how far each got (0..1): preloads, which
    # hold readiness back, and on-demand loads, which do not.
    state = request.app.state
    loading = {name: round(f, 3) for name, f in getattr(state.manager, "loading", {}).items()}
    if getattr(state, "ready", False) and getattr(state.manager, "ready", True):
        return JSONResponse({"status": "ready", "loading": loading})
    return JSONResponse({"status": "starting", "loading": loading}, status_code=503)
