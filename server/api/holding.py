"""A model held for one request: acquired before the answer starts, released when it ends or its stream closes."""
from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator

from starlette.requests import Request

from server.api.generation import Collected, cancel_on_disconnect, collect_all, usage_info
from server.api.observe import note_model
from server.api.schemas import UsageInfo
from server.api.streaming import EventStream
from server.engine.types import GenerateRequest, Usage

if TYPE_CHECKING:
    from server.manager import ModelHandle, ModelManager


class HeldModel:
    """One request's hold on a model. Answers are collected while it is held; a stream takes the
    hold over and gives it back when the stream closes, however it ends."""

    def __init__(self, request: Request, handle: "ModelHandle", stack: AsyncExitStack):
        self.request = request
        self.handle = handle
        self._stack = stack
        self.handed_over = False

    async def collect(self, requests: list[GenerateRequest]) -> list[Collected]:
        """The whole answers, side by side; a client that leaves cancels them (ClientDisconnected)."""
        return await cancel_on_disconnect(
            self.request, lambda: collect_all([self.handle.generate(r) for r in requests])
        )

    def reported(self, usage: Usage) -> UsageInfo:
        """The usage an answer reports, counted once for /metrics (so the counters add up to
        what clients were told), in the answer's JSON shape."""
        self.handle.metrics.usage(usage)
        return usage_info(usage)

    def stream(self, events: AsyncIterator[bytes]) -> EventStream:
        """An SSE response over `events` that releases the model when it closes."""
        self.handed_over = True
        return EventStream(events, on_close=self._stack.aclose)


@asynccontextmanager
async def hold_model(request: Request, manager: "ModelManager", name: str) -> AsyncIterator[HeldModel]:
    """Wait for the model (a swap or a load may take long; a client that leaves meanwhile stops
    waiting, the swap goes on), and give it back on exit unless a stream took it over."""
    note_model(request, name)
    stack = AsyncExitStack()
    if manager.takes_now(name):
        # acquire() returns without waiting: no race with a disconnect to set up (two tasks
        # and a cancel scope, a tenth of a millisecond of every request's first token).
        handle = await stack.enter_async_context(manager.acquire(name))
    else:
        handle = await cancel_on_disconnect(request, lambda: stack.enter_async_context(manager.acquire(name)))
    held = HeldModel(request, handle, stack)
    try:
        yield held
    finally:
        if not held.handed_over:
            await stack.aclose()
