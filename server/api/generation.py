"""Drives one generation for the chat/completion routes: collect it whole, or stream it as chunks."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncGenerator, AsyncIterator, Awaitable, Callable, Protocol, Sequence, TypeVar, Union

import anyio
from starlette.requests import Request


from server.api.answers import ChoicePipeline
from server.api.errors import ClientDisconnected, unexpected_error
from server.api.schemas import (
    CompletionTokensDetails,
    PromptTokensDetails,
    UsageInfo,
)
from server.api.streaming import SSE_DONE, sse_event, sse_json
from server.engine.types import Event, Failed, Finished, GenerateRequest, TextDelta, Usage
from server.errors import EngineFailed, LlamaslotsError, ServerBusy

logger = logging.getLogger("llamaslots.api")

T = TypeVar("T")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def usage_info(usage: Usage) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_tokens),
        completion_tokens_details=(CompletionTokensDetails(reasoning_tokens=usage.reasoning_tokens)
                                   if usage.reasoning_tokens is not None else None),
    )


def cancelled_error() -> LlamaslotsError:
    # The engine ends a request as "cancelled" only when it was not we who cancelled it: the
    # model is being unloaded or the server is stopping. The client may retry.
    return ServerBusy("the generation was cancelled because the model was unloaded or the server is stopping; retry the request")


def _no_result_error() -> LlamaslotsError:
    return EngineFailed("the model's engine ended the generation without a result")


async def close_events(events: AsyncIterator[Any]) -> None:
    """Close a handle's event generator (= cancel the request) even while being cancelled."""
    aclose = getattr(events, "aclose", None)
    if aclose is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await aclose()
        except Exception:  # noqa: BLE001 - a failing cancel must not hide the real outcome
            logger.exception("cancelling a generation failed")


@dataclass(frozen=True)
class Collected:
    deltas: list[TextDelta]
    finished: Finished

    @property
    def text(self) -> str:
        return "".join(d.text for d in self.deltas)


async def collect(events: AsyncIterator[Event]) -> Collected:
    """The whole answer of a non-streamed request; a Failed event raises its error."""
    parts: list[TextDelta] = []
    try:
        async for event in events:
            if isinstance(event, TextDelta):
                parts.append(event)
            elif isinstance(event, Finished):
                if event.reason == "cancelled":
                    raise cancelled_error()
                return Collected(parts, event)
            elif isinstance(event, Failed):
                raise event.error
        raise _no_result_error()
    finally:
        await close_events(events)


async def collect_all(generations: list[AsyncIterator[Event]]) -> list[Collected]:
    """Several answers side by side; the first failure cancels the others and is raised."""
    if len(generations) == 1:
        return [await collect(generations[0])]
    results: list[Collected | None] = [None] * len(generations)

    async def one(i: int) -> None:
        results[i] = await collect(generations[i])

    async with anyio.create_task_group() as group:
        for i in range(len(generations)):
            group.start_soon(one, i)
    return [r for r in results if r is not None]


def choice_request(req: GenerateRequest, index: int) -> GenerateRequest:
    """The request for choice `index`: a fixed seed moves by the index so choices differ
    (a sampled answer would otherwise repeat); greedy choices are identical anyway."""
    seed = req.params.sampling.seed
    if index == 0 or seed is None:
        return req
    sampling = dataclasses.replace(req.params.sampling, seed=seed + index)
    return dataclasses.replace(req, params=dataclasses.replace(req.params, sampling=sampling))


def combined_usage(usages: list[Usage], per_prompt: int = 1) -> Usage:
    """Usage of choices laid out prompt by prompt, `per_prompt` (n) each: OpenAI counts each
    prompt once and the completions of every choice."""
    firsts = usages[::per_prompt]
    reasoning = [u.reasoning_tokens for u in usages if u.reasoning_tokens is not None]
    return Usage(
        sum(u.prompt_tokens for u in firsts),
        sum(u.completion_tokens for u in usages),
        sum(u.cached_tokens for u in firsts),
        sum(reasoning) if reasoning else None,
    )


async def cancel_on_disconnect(request: Request, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`, cancelling it if the client disconnects first (then ClientDisconnected).

    Starlette does not cancel a handler whose client left; without this a slot would keep
    generating an answer nobody reads.
    """
    outcome: list[tuple[bool, Any]] = []

    async with anyio.create_task_group() as group:

        async def run() -> None:
            try:
                outcome.append((True, await work()))
            except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
                outcome.append((False, exc))
            finally:
                group.cancel_scope.cancel()

        async def watch() -> None:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    group.cancel_scope.cancel()
                    return

        group.start_soon(run)
        group.start_soon(watch)

    if not outcome:
        raise ClientDisconnected()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


@dataclass(frozen=True)
class NamedEvent:
    """An SSE event with an `event:` line (the Responses API names each of its events)."""

    event: str
    data: str


# One SSE event: the JSON text that follows `data: `, or a named event.
Frame = Union[str, NamedEvent]


class ReplyWriter(Protocol):
    """One choice's stream events."""

    pipeline: "ChoicePipeline"  # what the reply went through (its reasoning tokens are counted there)

    def opening(self) -> Sequence[Frame]: ...

    def delta(self, d: TextDelta) -> Sequence[Frame]: ...

    def finish(self, finished: Finished) -> Sequence[Frame]: ...

    def usage(self, usage: UsageInfo) -> Frame: ...


def _sse(frame: Frame) -> bytes:
    return sse_event(frame) if isinstance(frame, str) else sse_event(frame.data, frame.event)


@dataclass(frozen=True)
class _End:
    index: int
    usage: Usage


@dataclass(frozen=True)
class _Error:
    error: LlamaslotsError


async def _choice_stream(
    index: int, events: AsyncIterator[Event], writer: ReplyWriter,
) -> AsyncGenerator[bytes | _End | _Error, None]:
    """One choice's chunks (SSE events, encoded here: a chunk object per token cost more than
    the bytes), then its end (with usage) or an error. Closing it cancels the request."""
    try:
        for chunk in writer.opening():
            yield _sse(chunk)
        async for event in events:
            if isinstance(event, TextDelta):
                for chunk in writer.delta(event):
                    yield _sse(chunk)
            elif isinstance(event, Finished):
                if event.reason == "cancelled":
                    yield _Error(cancelled_error())
                    return
                for chunk in writer.finish(event):
                    yield _sse(chunk)
                yield _End(index, writer.pipeline.counted(event.usage))
                return
            elif isinstance(event, Failed):
                yield _Error(event.error)
                return
        yield _Error(_no_result_error())
    except LlamaslotsError as exc:
        yield _Error(exc)
    except Exception as exc:  # noqa: BLE001 - a bug mid-stream still ends the stream cleanly
        logger.error("unexpected error while streaming", exc_info=exc)
        yield _Error(unexpected_error(exc))
    finally:
        await close_events(events)


async def stream_choices(
    generations: list[AsyncIterator[Event]],
    writers: Sequence[ReplyWriter],
    *,
    per_prompt: int = 1,
    include_usage: bool = False,
    done: bool = True,
    report_usage: Callable[[Usage], UsageInfo] = usage_info,
) -> AsyncIterator[bytes]:
    """SSE events for several choices decoded side by side, each chunk carrying its index.

    Chunks go out as the choices produce them; one usage chunk (each prompt once, every
    choice's completion; `per_prompt` choices per prompt; `report_usage` sees it whether or not
    the client asked for it) and one [DONE] (unless `done` is
    False: the Responses API ends with its own last event) close the stream.
    A failure of any choice ends it with that error, and the other choices are cancelled.
    """
    choices = [_choice_stream(i, events, writers[i]) for i, events in enumerate(generations)]
    usages: list[Usage | None] = [None] * len(choices)
    merged = choices[0] if len(choices) == 1 else _merge(choices)
    try:
        async for item in merged:
            if isinstance(item, bytes):
                yield item  # a backlog pauses between events (ModelHandle.generate)
            elif isinstance(item, _End):
                usages[item.index] = item.usage
            else:
                _log_failure(item.error)
                yield sse_json(item.error.to_json())
                return
        usage = report_usage(combined_usage([u for u in usages if u is not None], per_prompt))
        if include_usage:
            yield _sse(writers[0].usage(usage))
        if done:
            yield SSE_DONE
    finally:
        # The merger first (it stops the pumps), then each choice (which cancels its request).
        with anyio.CancelScope(shield=True):
            await merged.aclose()
            for choice in choices:
                await choice.aclose()


async def _merge(choices: list[AsyncGenerator[T, None]]) -> AsyncGenerator[T, None]:
    """Items of several iterators as they come. Closing this stops (and awaits) every pump,
    so the iterators can be closed safely afterwards."""
    queue: asyncio.Queue = asyncio.Queue()
    finished = object()

    async def pump(it: AsyncIterator[T]) -> None:
        try:
            async for item in it:
                await queue.put(item)
        finally:
            queue.put_nowait(finished)

    tasks = [asyncio.create_task(pump(it)) for it in choices]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is finished:
                running -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _log_failure(exc: LlamaslotsError) -> None:
    if exc.status >= 500:
        logger.error("generation failed: %s", exc.message)
    else:
        logger.info("generation refused: %s", exc.message)
