"""Which engine serves which model: loading on demand, swapping, and the async handle to an engine."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator

from compat.config import gguf_header_problem
from compat.config_schema import ModelConfig
from compat.model_settings import ServerDefaults, load_settings
from server.engine.client import EngineClient, LocalEngine
from server.engine.types import Event, Failed, Finished, GenerateRequest, ModelInfo, TextDelta
from server.errors import ModelLoadFailed, ModelNotFound, ModelNotLoaded, ServerBusy
from server.metrics import Metrics
from server.worker import WorkerClient

log = logging.getLogger("llamaslots.manager")

# A model process that dies after running at least this long is started again at once.
RESTART_MIN_UPTIME = 10.0


@dataclass(frozen=True)
class ManagerPolicy:
    # How many models may be resident at once (0 = no limit); LocalAI's
    # --single-active-backend is 1.
    max_active: int = 0
    # Threads, context size and slots for configs that leave them unset.
    defaults: ServerDefaults = ServerDefaults()
    # "process": each model in its own worker process (crash isolation, real unloads);
    # "thread": in this process (for tools and tests of the engine itself).
    isolation: str = "process"
    # LocalAI's idle watchdog: unload a model nobody used for this many seconds.
    idle_timeout: float | None = None
    watchdog_interval: float = 0.5
    # LocalAI's --load-to-memory: models loaded at start.
    preload: tuple[str, ...] = ()
    # How long a swap lets the model it unloads keep taking new requests (LocalAI v3.9+
    # waits up to 30 x 1 s for a busy model before loading anyway).
    swap_grace: float = 30.0


class _Inbox:
    """One generation's events as the engine delivers them (always on the event loop): a deque
    and one waiter, which costs a third of asyncio.Queue's calls on a path taken per token."""

    __slots__ = ("items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: deque[Event] = deque()
        self._loop = loop
        self._waiter: asyncio.Future | None = None

    def put(self, event: Event) -> None:
        self.items.append(event)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        while not self.items:
            self._waiter = waiter = self._loop.create_future()
            await waiter


class ModelHandle:
    """The front-end's view of one loaded model; safe to use from the event loop."""

    def __init__(self, name: str, config: ModelConfig, engine: EngineClient, loop: asyncio.AbstractEventLoop,
                 metrics: Metrics):
        self.name = name
        self.config = config
        self.engine = engine
        self.info: ModelInfo = engine.info
        self.metrics = metrics.for_model(name, self.info.n_slots)
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.loaded_at = time.time()
        # Set while a swap waits for this model's requests to end: new ones queue behind it.
        self.draining = False
        engine.on_stats = self.metrics.step
        # Events arrive on the loop: one wake-up per engine step, for all of its events.
        engine.attach_loop(loop)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Event]:
        inbox = _Inbox(asyncio.get_running_loop())
        submitted = time.monotonic()
        last_text: float | None = None
        rid = self.engine.submit(req, inbox.put)
        finished = False
        try:
            while True:
                if inbox.items:
                    # A backlog (a slow client): one event-loop turn per event, so that a
                    # client that left is noticed before the next write to its dead socket
                    # instead of after a burst of them (each one a warning, the generation
                    # running on). Without a backlog the wait below is that turn.
                    await asyncio.sleep(0)
                else:
                    await inbox.wait()
                ev = inbox.items.popleft()
                if isinstance(ev, TextDelta) and ev.text:
                    t = time.monotonic()
                    if last_text is None:
                        self.metrics.first_token(t - submitted)
                    else:
                        self.metrics.token_gap(t - last_text)
                    last_text = t
                elif isinstance(ev, (Finished, Failed)):
                    finished = True
                yield ev
                if finished:
                    return
        finally:
            if not finished:
                # The client went away (or the consumer stopped early): free the slot.
                self.engine.cancel(rid)

    async def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        return await asyncio.wrap_future(self.engine.tokenize(text, add_special=add_special, parse_special=parse_special))

    async def detokenize(self, tokens: list[int]) -> str:
        return await asyncio.wrap_future(self.engine.detokenize(tokens))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.wrap_future(self.engine.embed(texts))

    async def stats(self) -> dict:
        return await asyncio.wrap_future(self.engine.stats())


class ModelManager:
    """Loads models on first use and keeps at most `max_active` of them resident.

    One swap at a time (`_swapping`, always cleared in `finally`, so a failed load never
    blocks later ones: LocalAI #7503). While a swap waits for the model it will unload to
    go idle, requests for that model keep being served, so concurrent requests to two
    models are served in groups instead of swapping back and forth per request; after
    `swap_grace` seconds the old model takes no new requests so the swap cannot starve.
    A load failure reports llama.cpp's own reason.
    """

    def __init__(self, configs, models_path: Path, policy: ManagerPolicy | None = None,
                 metrics: Metrics | None = None):
        self.configs = configs
        self._models_path = Path(models_path)
        self.policy = policy or ManagerPolicy()
        self.metrics = metrics or Metrics()
        # Models being loaded now, with how far llama.cpp says it got (0..1).
        self.loading: dict[str, float] = {}
        self._handles: dict[str, ModelHandle] = {}
        self._lru: list[str] = []
        # Guards _handles/_swapping changes; notified when a swap ends or a request ends.
        self._state = asyncio.Condition()
        self._swapping = False
        self._watchdog: asyncio.Task | None = None
        self.ready = False
        # Set once shutdown begins: no request starts after it, so draining can end.
        self._closing = False
        self._swaps: set[asyncio.Task] = set()

    @property
    def models_path(self) -> Path:
        return self._models_path

    def list_models(self) -> list[str]:
        """Configured names, then loose files in the models path (servable by file name)."""
        return list(self.configs.models) + self.configs.loose_files()

    def config_for(self, name: str | None):
        if not name:
            if not self.configs.models:
                raise ModelNotFound("")
            return next(iter(self.configs.models.values()))
        cfg = self.configs.lookup(name)
        if cfg is None:
            raise ModelNotFound(name)
        return cfg

    def loaded(self) -> list[str]:
        return list(self._handles)

    def handles(self) -> list[ModelHandle]:
        return list(self._handles.values())

    def handle_of(self, name: str) -> ModelHandle | None:
        """The resident model of that name (a configured name or alias), if it is loaded."""
        return self._handles.get(self.config_for(name).name)

    async def load_model(self, name: str) -> ModelHandle:
        """Load a model now (LocalAI's /backend/load), swapping as a request for it would."""
        return await self._get(self.config_for(name))

    async def shutdown_model(self, name: str) -> None:
        """LocalAI's /backend/shutdown: let the model's requests finish (new ones wait), then
        unload it; the next request for it loads it again."""
        cfg = self.config_for(name)
        async with self._exclusive():
            if cfg.name not in self._handles:
                raise ModelNotLoaded(cfg.name)
            await self._drain(cfg.name)
            await self._unload(cfg.name, "request")

    async def start(self) -> None:
        for name in self.policy.preload:
            await self._get(self.config_for(name))
        if self.policy.idle_timeout:
            self._watchdog = asyncio.create_task(self._watch_idle(self.policy.idle_timeout))
        self.ready = True

    @contextlib.asynccontextmanager
    async def _exclusive(self):
        """Be the one swapper: wait for any other swap to end, and always hand over."""
        async with self._state:
            await self._state.wait_for(lambda: not self._swapping)
            self._swapping = True
        try:
            yield
        finally:
            async with self._state:
                self._swapping = False
                self._state.notify_all()

    async def _watch_idle(self, timeout: float) -> None:
        while True:
            await asyncio.sleep(self.policy.watchdog_interval)
            now = time.monotonic()
            idle = [n for n, h in self._handles.items() if h.in_flight == 0 and now - h.last_used > timeout]
            if not idle:
                continue
            async with self._exclusive():
                for name in idle:
                    h = self._handles.get(name)
                    if h is not None and h.in_flight == 0 and time.monotonic() - h.last_used > timeout:
                        log.info("model %s idle for %.0fs: unloading (idle watchdog)", name, now - h.last_used)
                        await self._unload(name, "idle")

    def in_flight(self) -> int:
        return sum(h.in_flight for h in self._handles.values())

    async def shutdown(self, grace: float) -> None:
        """Stop taking requests, let those in flight finish for up to `grace` seconds, then
        unload every model: what still runs is cancelled, and its client is told why."""
        async with self._state:
            self._closing = True
            self._state.notify_all()
            busy = self.in_flight()
            if busy:
                log.info("stopping: %d request(s) in flight get up to %gs to finish", busy, grace)
                try:
                    await asyncio.wait_for(self._state.wait_for(lambda: self.in_flight() == 0), grace)
                except asyncio.TimeoutError:
                    log.warning("stopping: cancelling %d request(s) still running after %gs",
                                self.in_flight(), grace)
        await self.aclose()

    async def aclose(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        async with self._exclusive():
            for name in list(self._handles):
                await self._unload(name, "shutdown")

    @contextlib.asynccontextmanager
    async def acquire(self, name: str | None):
        cfg = self.config_for(name)
        handle = await self._get(cfg)
        # No await between _get's check and this: a swap cannot slip in between.
        self._refuse_if_closing()
        handle.in_flight += 1
        try:
            yield handle
        finally:
            handle.in_flight -= 1
            handle.last_used = time.monotonic()
            async with self._state:
                self._state.notify_all()

    def takes_now(self, name: str | None) -> bool:
        """Whether acquire(name) would return at once: the model is loaded and taking requests
        and nothing holds the manager's state (a load, swap or shutdown deciding)."""
        return not self._closing and not self._state.locked() and self._usable(self.config_for(name).name) is not None

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise ServerBusy("the server is stopping and takes no new requests; retry on another instance")

    def _usable(self, name: str) -> ModelHandle | None:
        h = self._handles.get(name)
        if h is not None and not h.draining and h.engine.alive:
            return h
        return None

    async def _get(self, cfg) -> ModelHandle:
        name = cfg.name
        async with self._state:
            while True:
                self._refuse_if_closing()
                handle = self._usable(name)
                if handle is not None:
                    self._touch(name)
                    return handle
                if not self._swapping:
                    self._swapping = True
                    break
                # Another swap is under way (maybe to this very model): wait for it.
                await self._state.wait()
        swap = asyncio.create_task(self._swap_to(cfg), name=f"swap-to-{name}")
        self._swaps.add(swap)
        swap.add_done_callback(self._swap_done)
        # Shielded: this requester may leave (client gone), the swap goes on.
        return await asyncio.shield(swap)

    async def _swap_to(self, cfg) -> ModelHandle:
        """A swap as a task of its own. Cancelled halfway with its requester, it would leave a
        model process started and never registered, or the old model half unloaded."""
        try:
            return await self._load(cfg)
        finally:
            async with self._state:
                self._swapping = False
                self._state.notify_all()

    def _swap_done(self, swap: asyncio.Task) -> None:
        self._swaps.discard(swap)
        if not swap.cancelled() and swap.exception() is not None:
            # Its requester has it (or left): either way it is handled, not "never retrieved".
            log.debug("swap %s failed: %s", swap.get_name(), swap.exception())

    async def _load(self, cfg) -> ModelHandle:
        name = cfg.name
        stale = self._handles.get(name)
        if stale is not None:
            # Its process died (its requests were failed with the reason): load it afresh.
            how = stale.engine.ended_how
            log.warning("model %s is not running any more (%s); starting it again", name, how)
            await self._drain(name)
            await self._unload(name, "died")
            self.metrics.worker_restart(name, how)
        with self._load_failures(name):
            opts = load_settings(cfg, self._models_path, self.policy.defaults)
            # Checked before anything is unloaded for it: a file that cannot be a model must
            # not cost the users of a working one their model (nor show its bytes in an error).
            problem = gguf_header_problem(Path(opts.model_path))
            if problem is not None:
                raise ModelLoadFailed(name, f"{Path(opts.model_path).name} {problem}")
        limit = self.policy.max_active
        swap_started: float | None = None
        while limit and len(self._handles) >= limit:
            swap_started = swap_started or time.monotonic()
            victim = self._lru[0]
            await self._drain(victim)
            await self._unload(victim, "swap")
        for field_name in ("f16", "low_vram", "numa"):
            if getattr(cfg, field_name, False):
                # As in LocalAI's llama-cpp backend; check-config lists them too.
                log.debug("model %s: `%s` is accepted and has no effect", cfg.name, field_name)
        started = time.monotonic()
        self.loading[name] = 0.0
        try:
            with self._load_failures(name):
                log.info("loading model %s from %s (%d slots, kv_unified=%s)", name, opts.model_path,
                         opts.n_slots, opts.kv_unified)
                factory = WorkerClient if self.policy.isolation == "process" else LocalEngine
                engine = await asyncio.to_thread(factory, opts, name=name, on_progress=self._progress_of(name))
        finally:
            self.loading.pop(name, None)
        seconds = time.monotonic() - started
        loop = asyncio.get_running_loop()
        handle = ModelHandle(name, cfg, engine, loop, self.metrics)
        engine.on_dead = lambda reason: self._engine_died(loop, handle)
        self._handles[name] = handle
        self._touch(name)
        info = handle.info
        swap_seconds = time.monotonic() - swap_started if swap_started is not None else None
        self.metrics.model_loaded(name, seconds, info.n_ctx, swap_seconds=swap_seconds,
                                  resident=len(self._handles))
        log.info("model %s ready in %.1fs: n_ctx %d, per request %d, %d slots", name, seconds, info.n_ctx,
                 info.n_ctx_seq, info.n_slots)
        return handle

    @contextlib.contextmanager
    def _load_failures(self, name: str) -> Iterator[None]:
        """Counts a failed load; an OS or settings error becomes the load failure it is."""
        try:
            yield
        except (ValueError, OSError) as exc:
            self.metrics.load_failed(name)
            raise ModelLoadFailed(name, str(exc)) from exc
        except BaseException:
            self.metrics.load_failed(name)
            raise

    def _engine_died(self, loop: asyncio.AbstractEventLoop, handle: ModelHandle) -> None:
        """From the thread that saw the engine go (its requests have been failed already)."""
        try:
            loop.call_soon_threadsafe(self._schedule_restart, handle)
        except RuntimeError:
            pass  # the loop is closed: the server is gone too

    def _schedule_restart(self, handle: ModelHandle) -> None:
        if self._closing or self._handles.get(handle.name) is not handle:
            return  # unloaded on purpose (swap, idle, shutdown): nothing to bring back
        lived = time.time() - handle.loaded_at
        if lived < RESTART_MIN_UPTIME:
            # Died soon after it started (out of memory once its weights were touched, a crash
            # on load): starting it again at once would loop. The next request for it loads it
            # again, and reports the reason if it fails.
            log.error("model %s died %.0fs after it was loaded; it is started again on its next request, "
                      "not now", handle.name, lived)
            return
        task = asyncio.create_task(self._restart(handle), name=f"restart-{handle.name}")
        self._swaps.add(task)
        task.add_done_callback(self._swap_done)

    async def _restart(self, handle: ModelHandle) -> None:
        """A model whose process died is started again at once, not at its next request: a
        client should not pay for the load, nor find out by waiting."""
        async with self._exclusive():
            if self._closing or self._handles.get(handle.name) is not handle:
                return
            try:
                cfg = self.configs.lookup(handle.name) or handle.config
                await self._load(cfg)  # unloads the dead one and counts the restart
            except Exception as exc:  # noqa: BLE001 - the next request tries again and reports it
                log.error("model %s could not be started again: %s", handle.name, exc)

    def _progress_of(self, name: str):
        def progress(fraction: float) -> None:
            # From the loading thread: one float into a dict the loop only reads.
            if name in self.loading:
                self.loading[name] = fraction

        return progress

    def _touch(self, name: str) -> None:
        if name in self._lru:
            self._lru.remove(name)
        self._lru.append(name)

    async def _drain(self, name: str) -> None:
        """Wait until the model has no request in flight. During the grace period it still
        takes new requests (they are served, not bounced); after it, new ones wait."""
        handle = self._handles[name]
        async with self._state:
            try:
                await asyncio.wait_for(self._state.wait_for(lambda: handle.in_flight == 0), self.policy.swap_grace)
            except asyncio.TimeoutError:
                handle.draining = True
                await self._state.wait_for(lambda: handle.in_flight == 0)
            handle.draining = True

    async def _unload(self, name: str, reason: str) -> None:
        handle = self._handles.pop(name)
        self._lru.remove(name)
        log.info("unloading model %s (%s)", name, reason)
        started = time.monotonic()
        await asyncio.to_thread(handle.engine.close)
        self.metrics.model_unloaded(name, reason, time.monotonic() - started, resident=len(self._handles))
