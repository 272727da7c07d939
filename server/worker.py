"""A model in its own process: the worker's main loop and the front-end's client to it.

llama.cpp aborts the whole process on some misuse (GGML_ASSERT) and does not always give
memory back when a model is freed. With one process per resident model, a crash fails
only that model's requests and an unload really frees its memory.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import signal
import threading
from concurrent.futures import Future
from typing import Callable

from compat.model_settings import LoadSettings
from server.engine.types import Event, Failed, GenerateRequest, ModelInfo, TextDelta
from server.errors import EngineFailed, LlamaslotsError, ModelLoadFailed

log = logging.getLogger("llamaslots.worker")

# What a user can do about the signals llama.cpp dies of.
_SIGNAL_HINTS = {
    "SIGILL": "llama.cpp ran an instruction this CPU refuses: llama-cpp-python was built for "
              "another CPU, or with ggml's AMX kernels, which crash in this version; rebuild it "
              "as the README says (`make rebuild-llama`)",
    "SIGABRT": "llama.cpp aborted (a GGML_ASSERT); its message is in the log just above",
}

_CALLS = {"tokenize", "embed", "stats"}


def worker_main(conn, opts: LoadSettings, name: str, log_level: int) -> None:
    """Entry point of the worker process: runs an Engine and relays its events."""
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s")
    from server.engine.engine import Engine

    send_lock = threading.Lock()

    def send(msg: tuple) -> None:
        with send_lock:
            try:
                conn.send(msg)
            except (OSError, EOFError, BrokenPipeError):
                pass  # the front-end is gone; the stop message or EOF ends us

    # Events are gathered during an engine step and sent as one message after it: one
    # pipe write per step instead of one per token (all on the engine thread).
    pending: list[tuple[int, Event]] = []

    def flush() -> None:
        if pending:
            batch = pending[:]
            pending.clear()
            send(("events", batch))

    try:
        engine = Engine(opts, name=name, after_step=flush)
    except LlamaslotsError as exc:
        send(("load_failed", exc))
        return
    except BaseException as exc:  # anything else is still a load failure, with its text
        send(("load_failed", ModelLoadFailed(name, f"{type(exc).__name__}: {exc}")))
        return
    send(("ready", engine.info))
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "submit":
                _, rid, req = msg
                engine.submit_with_id(rid, req, lambda ev, rid=rid: pending.append((rid, ev)))
            elif kind == "cancel":
                engine.cancel(msg[1])
            elif kind == "call":
                _, cid, what, kwargs = msg
                fut = getattr(engine, what)(**kwargs)
                fut.add_done_callback(lambda f, cid=cid: send(_result(cid, f)))
            elif kind == "stop":
                break
    finally:
        engine.close()
        send(("stopped",))


def _result(cid: int, fut: Future) -> tuple:
    exc = fut.exception()
    if exc is None:
        return ("result", cid, fut.result())
    if not isinstance(exc, LlamaslotsError):
        exc = EngineFailed(f"{type(exc).__name__}: {exc}")
    return ("error", cid, exc)


class WorkerEngine:
    """Front-end side of a worker: the same calls as Engine, over a pipe.

    One reader thread per worker turns the worker's messages into sink calls and future
    results. If the worker dies, every request and call in flight fails with the reason.
    """

    def __init__(self, opts: LoadSettings, *, name: str, load_timeout: float = 600.0):
        self.name = name
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=worker_main, args=(child, opts, name, logging.getLogger().level), name=f"llamaslots-{name}", daemon=True
        )
        self._proc.start()
        child.close()
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sinks: dict[int, Callable[[Event], None]] = {}
        self._calls: dict[int, Future] = {}
        self.dead: str | None = None
        if not self._conn.poll(load_timeout):
            self._proc.kill()
            raise ModelLoadFailed(name, f"the model did not load within {load_timeout:.0f}s")
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            raise ModelLoadFailed(name, f"the model's process exited while loading ({self._exit_text()})") from None
        if msg[0] == "load_failed":
            self._proc.join(10)
            raise msg[1]
        self.info: ModelInfo = msg[1]
        self._reader = threading.Thread(target=self._read, name=f"worker-reader-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _exit_text(self) -> str:
        code = self._proc.exitcode
        if code is None:
            return "still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                return f"killed by signal {-code}"
            hint = _SIGNAL_HINTS.get(name)
            return f"killed by {name}: {hint}" if hint else f"killed by {name}"
        return f"exit code {code}"

    def _send(self, msg: tuple) -> bool:
        with self._send_lock:
            if self.dead:
                return False
            try:
                self._conn.send(msg)
                return True
            except (OSError, EOFError, BrokenPipeError):
                return False

    def submit(self, req: GenerateRequest, sink: Callable[[Event], None]) -> int:
        rid = next(self._ids)
        with self._lock:
            dead = self.dead
            if not dead:
                self._sinks[rid] = sink
        if dead or not self._send(("submit", rid, req)):
            with self._lock:
                self._sinks.pop(rid, None)
            sink(Failed(self._not_running()))
        return rid

    def _not_running(self) -> EngineFailed:
        reason = self.dead
        if not reason:
            # The pipe broke before the reader saw the end: the exit status says why (a
            # process whose pipe is gone has exited or is about to; this wait is short).
            self._proc.join(0.5)
            reason = f"the model's process ended ({self._exit_text()})"
        return EngineFailed(f"model {self.name} is not running ({reason})")

    def cancel(self, rid: int) -> None:
        self._send(("cancel", rid))

    def _call(self, what: str, **kwargs) -> Future:
        fut: Future = Future()
        cid = next(self._ids)
        with self._lock:
            dead = self.dead
            if not dead:
                self._calls[cid] = fut
        if dead or not self._send(("call", cid, what, kwargs)):
            with self._lock:
                self._calls.pop(cid, None)
            fut.set_exception(self._not_running())
        return fut

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> Future:
        return self._call("tokenize", text=text, add_special=add_special, parse_special=parse_special)

    def embed(self, texts: list[str]) -> Future:
        return self._call("embed", texts=texts)

    def stats(self) -> Future:
        return self._call("stats")

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "events":
                for rid, ev in msg[1]:
                    with self._lock:
                        sink = self._sinks.get(rid)
                        if sink is not None and not isinstance(ev, TextDelta):
                            del self._sinks[rid]
                    if sink is not None:
                        sink(ev)
            elif kind in ("result", "error"):
                with self._lock:
                    fut = self._calls.pop(msg[1], None)
                if fut is not None:
                    (fut.set_result if kind == "result" else fut.set_exception)(msg[2])
            elif kind == "stopped":
                break
        self._proc.join(5)
        self._mark_dead()

    def _mark_dead(self) -> None:
        reason = f"the model's process ended ({self._exit_text()})"
        with self._lock:
            if self.dead:
                return
            self.dead = reason
            sinks, self._sinks = self._sinks, {}
            calls, self._calls = self._calls, {}
        if sinks or calls:
            log.error("model %s: %s; failing %d request(s)", self.name, reason, len(sinks) + len(calls))
        for sink in sinks.values():
            sink(Failed(EngineFailed(f"model {self.name} failed: {reason}")))
        for fut in calls.values():
            fut.set_exception(EngineFailed(f"model {self.name} failed: {reason}"))

    @property
    def alive(self) -> bool:
        return self.dead is None and self._proc.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        self._send(("stop",))
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._reader.join(5)
        self._mark_dead()
        self._conn.close()
