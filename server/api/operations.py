"""Operator endpoints: /metrics, LocalAI's /system, /backend/* and /version, llama-server's /slots, recent requests."""
from __future__ import annotations

import asyncio
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from server.api.body import decode_json_object
from server.api.errors import ErrorCatchingRoute
from server.api.observe import note_model
from server.errors import InvalidRequest, LlamaslotsError
from server.manager import ModelHandle, ModelManager
from server.procinfo import process_usage

router = APIRouter(route_class=ErrorCatchingRoute)
metrics_router = APIRouter(route_class=ErrorCatchingRoute)

# What /system lists as backends: the one this server runs every model with.
BACKEND = "llama-cpp"


@metrics_router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)


@router.get("/system")
async def system(request: Request) -> JSONResponse:
    manager: ModelManager = request.app.state.manager
    return JSONResponse({"backends": [BACKEND], "loaded_models": [{"id": name} for name in manager.loaded()]})


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


@router.get("/version")
async def version() -> JSONResponse:
    return JSONResponse({"version": f"llamaslots {_installed_version('llamaslots')} "
                                    f"(llama-cpp-python {_installed_version('llama_cpp_python')})"})


async def _model_param(request: Request) -> str:
    """`model` from a JSON body, or for a GET from the query string (LocalAI reads either for
    its GET; a POST that changes what is loaded takes only a JSON body, which a web page
    cannot send to another origin without asking first)."""
    name = request.query_params.get("model") if request.method == "GET" else None
    if not name:
        raw = await request.body()
        if raw.strip():
            body = decode_json_object(raw)
            if isinstance(body.get("model"), str):
                name = body["model"]
    if not name:
        where = ' or ?model=<name>' if request.method == "GET" else ""
        raise InvalidRequest(f'model is required: send {{"model": "<name>"}}{where}')
    return name


async def _named_model(request: Request) -> tuple[ModelManager, str]:
    """The manager and the configured name of the model the request names."""
    manager: ModelManager = request.app.state.manager
    name = manager.config_for(await _model_param(request)).name
    note_model(request, name)
    return manager, name


@router.get("/backend/monitor")
async def backend_monitor(request: Request) -> JSONResponse:
    manager, name = await _named_model(request)
    handle = manager.handle_of(name)
    if handle is None:
        state = "LOADING" if name in manager.loading else "UNINITIALIZED"
        return JSONResponse({"model": name, "state": state, "loading_progress": manager.loading.get(name)})
    return JSONResponse(await _monitor(handle))


async def _monitor(handle: ModelHandle) -> dict[str, Any]:
    stats = await _stats(handle)
    alive = stats is not None
    busy = bool(stats and any(s["state"] != "idle" for s in stats["slots"]))
    out: dict[str, Any] = {
        "model": handle.name,
        # LocalAI's StatusResponse states.
        "state": "ERROR" if not alive else "BUSY" if busy else "READY",
        "pid": handle.engine.pid,
        "in_flight": handle.in_flight,
        "loaded_at": handle.loaded_at,
        # What must never show in an answer (llamaslots compare looks for them).
        "special_tokens": [t for t in (handle.info.bos_text, handle.info.eos_text) if t],
    }
    usage = process_usage(handle.engine.pid) if handle.engine.pid else None
    if usage is not None:
        out["memory"] = {"total": usage.memory["rss"], "breakdown": usage.memory}
        out["MemoryPercent"] = usage.memory_percent
        out["CPUPercent"] = usage.cpu_percent
    if stats is not None:
        out.update(waiting=stats["waiting"], kv_used=stats["kv_used"], kv_size=stats["kv_size"],
                   cached_prompts=stats["cached_prompts"], slots=_slots(handle, stats))
    return out


@router.post("/backend/shutdown")
async def backend_shutdown(request: Request) -> JSONResponse:
    manager, name = await _named_model(request)
    await manager.shutdown_model(name)
    return JSONResponse({"model": name, "message": "model unloaded"})


@router.post("/backend/load")
async def backend_load(request: Request) -> JSONResponse:
    manager, name = await _named_model(request)
    await manager.load_model(name)
    return JSONResponse({"loaded": manager.loaded(), "message": "model loaded"})


@router.get("/slots")
async def slots(request: Request) -> JSONResponse:
    """llama-server's /slots, one entry per slot of every loaded model (`model` names it;
    ?model= keeps one)."""
    manager: ModelManager = request.app.state.manager
    wanted = request.query_params.get("model")
    handles = manager.handles()
    if wanted:
        name = manager.config_for(wanted).name
        handles = [h for h in handles if h.name == name]
    out: list[dict[str, Any]] = []
    for handle in handles:
        stats = await _stats(handle)
        if stats is not None:
            out.extend(_slots(handle, stats))
    return JSONResponse(out)


# An engine answers queries between steps; one that does not within this is wedged.
STATS_TIMEOUT = 10.0


async def _stats(handle: ModelHandle) -> dict[str, Any] | None:
    """The engine's slot states, or None when it is gone (unloaded by a swap meanwhile, dead,
    or not answering): a monitoring call reports that instead of failing."""
    if not handle.engine.alive:
        return None
    try:
        return await asyncio.wait_for(handle.stats(), STATS_TIMEOUT)
    except (LlamaslotsError, asyncio.TimeoutError):
        return None


def _slots(handle: ModelHandle, stats: dict[str, Any]) -> list[dict[str, Any]]:
    n_ctx = handle.info.n_ctx_seq
    rows = []
    for s in stats["slots"]:
        processing = s["state"] != "idle"
        rows.append({
            "id": s["id"], "model": handle.name, "n_ctx": n_ctx, "state": s["state"],
            "is_processing": processing, "id_task": s["rid"] if processing else -1,
            "n_prompt_tokens": s["n_prompt"], "n_prompt_tokens_cache": s["n_cached_prompt"],
            "n_cached_cells": s["n_cached"],
            "next_token": {"has_next_token": processing, "n_decoded": s["n_generated"]},
        })
    return rows


@router.get("/requests")
async def recent_requests(request: Request) -> JSONResponse:
    """The last requests this server answered, newest first (the status page's list)."""
    records = request.app.state.metrics.recent_requests()
    return JSONResponse({"requests": [r.as_json() for r in records]})
