"""Fixtures for the HTTP layer: an app over FakeManager, an httpx client on it, SSE parsing."""
from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from server.app import create_app
from tests.api.fakes import model_config, FakeHandle, FakeManager


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def handle() -> FakeHandle:
    return FakeHandle(model_config("vicuna-13b"))


@pytest.fixture
def manager(handle: FakeHandle) -> FakeManager:
    return FakeManager([handle, FakeHandle(model_config("karakuri-70b"))])


@pytest.fixture
def app(manager: FakeManager):
    return create_app(manager, settings=None)


@pytest.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded except [DONE]; comments skipped."""
    out: list[Any] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [l for l in block.split("\n") if l and not l.startswith(":")]
        if not lines:
            continue
        assert all(l.startswith("data: ") for l in lines), block
        data = "\n".join(l[len("data: "):] for l in lines)
        out.append(data if data == "[DONE]" else json.loads(data))
    return out
