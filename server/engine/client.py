"""The front-end's side of an engine: submit, cancel and query it, with its messages delivered to the waiting callers.

Two transports share it: LocalEngine runs the engine thread in this process (tools, tests);
server.worker.WorkerClient runs it in a process of its own (the server).
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
from concurrent.futures import Future
from typing import Callable

from compat.model_settings import LoadSettings
from server.engine.messages import (
    Call, CallDone, Cancel, Command, Detokenize, Embed, Message, Query, Stats, StepEvents, StepStats, Stopped,
    Submit, Tokenize,
)
from server.engine.types import Event, Failed, Finished, GenerateRequest, ModelInfo
from server.errors import EngineFailed

log = logging.getLogger("llamaslots.engine")

Sink = Callable[[Event], None]


class EngineClient:
    """Numbers requests and queries, sends them, and routes what comes back.

    Sinks are called through `post` (set by the async front-end to hop onto its event loop):
    one hop per engine step for all the step's events, not one per token. Without a poster
    they are called on the delivering thread.
    """

    info: ModelInfo

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sinks: dict[int, Sink] = {}
        self._calls: dict[int, Future] = {}
        self._post: Callable[[Callable[[], None]], object] | None = None
        # Called (on the delivering thread) with each step's counters.
        self.on_stats: Callable[[StepStats], None] | None = None
        # Called once (on the thread that saw it) when the engine is gone, with the reason.
        self.on_dead: Callable[[str], None] | None = None
        self.dead: str | None = None

    # -- the transport, per subclass --------------------------------------------------------
    def _transport(self, command: Command) -> bool:
        """Deliver a command to the engine; False when it cannot be (the engine is gone)."""
        raise NotImplementedError

    def _not_running(self) -> EngineFailed:
        return self._not_running_because(self.dead or "stopped")

    def _not_running_because(self, reason: str) -> EngineFailed:
        return EngineFailed(f"model {self.name} is not running ({reason})")

    @property
    def alive(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return None

    @property
    def ended_how(self) -> str:
        """How the engine ended, for the restart metric: a signal name or exit code for a process."""
        return "stopped" if self.dead else "running"

    def close(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    # -- calls ------------------------------------------------------------------------------
    def set_poster(self, post: Callable[[Callable[[], None]], object] | None) -> None:
        self._post = post

    def attach_loop(self, loop) -> None:
        """Deliver to sinks that live on this asyncio loop."""
        self.set_poster(lambda fn: loop.call_soon_threadsafe(fn))

    def submit(self, req: GenerateRequest, sink: Sink) -> int:
        rid = next(self._ids)
        with self._lock:
            dead = self.dead
            if not dead:
                self._sinks[rid] = sink
        if dead or not self._transport(Submit(rid, req)):
            with self._lock:
                self._sinks.pop(rid, None)
            sink(Failed(self._not_running()))
        return rid

    def cancel(self, rid: int) -> None:
        self._transport(Cancel(rid))

    def query(self, query: Query) -> Future:
        fut: Future = Future()
        cid = next(self._ids)
        with self._lock:
            dead = self.dead
            if not dead:
                self._calls[cid] = fut
        if dead or not self._transport(Call(cid, query)):
            with self._lock:
                self._calls.pop(cid, None)
            fut.set_exception(self._not_running())
        return fut

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> Future:
        return self.query(Tokenize(text, add_special, parse_special))

    def detokenize(self, tokens: list[int]) -> Future:
        return self.query(Detokenize(tuple(tokens)))

    def embed(self, texts: list[str]) -> Future:
        return self.query(Embed(tuple(texts)))

    def stats(self) -> Future:
        return self.query(Stats())

    # -- what comes back ----------------------------------------------------------------------
    def deliver(self, msg: Message, *, on_consumer: bool = False) -> None:
        """Route one message from the engine (on the engine's or the reader's thread, or on the
        consumer's own loop when `on_consumer`: then sinks are called right away)."""
        if isinstance(msg, StepEvents):
            calls: list[tuple[Sink, Event]] = []
            with self._lock:
                for rid, ev in msg.events():
                    sink = self._sinks.get(rid)
                    if sink is None:
                        continue
                    if isinstance(ev, (Finished, Failed)):
                        del self._sinks[rid]
                    calls.append((sink, ev))
            if msg.stats is not None and self.on_stats is not None:
                self.on_stats(msg.stats)
            if calls:
                self._dispatch(calls, direct=on_consumer)
        elif isinstance(msg, CallDone):
            with self._lock:
                fut = self._calls.pop(msg.cid, None)
            if fut is not None:
                if msg.error is not None:
                    fut.set_exception(msg.error)
                else:
                    fut.set_result(msg.value)
        elif isinstance(msg, Stopped):
            pass

    def _dispatch(self, calls: list[tuple[Sink, Event]], *, direct: bool = False) -> None:
        def run() -> None:
            for sink, ev in calls:
                try:
                    sink(ev)
                except Exception:  # noqa: BLE001 - one consumer's bug must not starve the others
                    log.exception("delivering an event failed")

        if direct or self._post is None:
            run()
            return
        try:
            self._post(run)
        except RuntimeError:
            pass  # the consumer's loop is gone (shutdown): nobody is listening any more

    def _mark_dead(self, reason: str, *, failure: str | None = None) -> None:
        """The engine is gone: every request and query in flight fails with the reason."""
        with self._lock:
            if self.dead:
                return
            self.dead = reason
            sinks, self._sinks = self._sinks, {}
            calls, self._calls = self._calls, {}
        if sinks or calls:
            log.error("model %s: %s; failing %d request(s)", self.name, reason, len(sinks) + len(calls))
        error = EngineFailed(failure or f"model {self.name} failed: {reason}")
        if sinks:
            self._dispatch([(sink, Failed(error)) for sink in sinks.values()])
        for fut in calls.values():
            fut.set_exception(error)
        if self.on_dead is not None:
            self.on_dead(reason)


class LocalEngine(EngineClient):
    """The engine on a thread of this process (no crash isolation; for tools and tests)."""

    def __init__(self, opts: LoadSettings, *, name: str = "model",
                 on_progress: Callable[[float], None] | None = None):
        super().__init__(name)
        from server.engine.engine import Engine  # llama.cpp is loaded only where an engine runs

        self._engine = Engine(opts, name=name, emit=self.deliver, on_progress=on_progress)
        self.info = self._engine.info

    def _transport(self, command: Command) -> bool:
        if not self._engine.alive:
            return False
        self._engine.put(command)
        return True

    @property
    def alive(self) -> bool:
        return self.dead is None and self._engine.alive

    @property
    def pid(self) -> int | None:
        return os.getpid()

    def close(self, timeout: float = 30.0) -> None:
        self._engine.close(timeout)
        self._mark_dead("the model was unloaded")
