"""The status page: one self-contained HTML file (no CDN) that draws itself from the operator endpoints."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from server.api.errors import ErrorCatchingRoute

router = APIRouter(route_class=ErrorCatchingRoute)

_STATIC = Path(__file__).parent / "static"


@lru_cache(maxsize=None)
def page(name: str) -> str:
    return (_STATIC / name).read_text(encoding="utf-8")


@router.get("/", include_in_schema=False)
async def status_page() -> HTMLResponse:
    return HTMLResponse(page("status.html"))


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    # Browsers ask for it with every page; "none" beats a 404 in the recent-requests list.
    return Response(status_code=204)
