"""A model in its own process: the worker's main loop, and WorkerClient, the front-end's side of its pipe.

llama.cpp aborts the whole process on some misuse (GGML_ASSERT) and does not always give
memory back when a model is freed. With one process per resident model, a crash fails
only that model's requests and an unload really frees its memory.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Callable

from compat.model_settings import LoadSettings
from server.engine.client import EngineClient
from server.engine.messages import Command, LoadFailed, LoadProgress, Message, Ready, StepEvents, Stop, Stopped
from server.errors import LlamaslotsError, ModelLoadFailed
from server.wire import MessageReader, write_message

log = logging.getLogger("llamaslots.worker")

# What a user can do about the signals llama.cpp dies of.
_SIGNAL_HINTS = {
    "SIGILL": "llama.cpp ran an instruction this CPU refuses: llama-cpp-python was built for "
              "another CPU, or with ggml's AMX kernels, which crash in this version; rebuild it "
              "as the README says (`make rebuild-llama`)",
    "SIGABRT": "llama.cpp aborted (a GGML_ASSERT or an uncaught C++ exception); its message is in the log "
               "just above",
}


def worker_main(conn, opts: LoadSettings, name: str, log_level: int) -> None:
    """Entry point of the worker process: runs an Engine, relays commands in and messages out."""
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s")
    from server.engine.engine import Engine

    # The engine thread writes its one message per step itself: a small pipe write costs less
    # than waking a sender thread for it (measured: the wake-up alone was 3% of a step).
    send_lock = threading.Lock()
    fd = conn.fileno()

    def send(msg: Message) -> None:
        with send_lock:
            try:
                write_message(fd, msg, msg.plain() if type(msg) is StepEvents else None)
            except OSError:
                pass  # the front-end is gone; the stop message or EOF ends us

    try:
        engine = Engine(opts, name=name, emit=send, on_progress=lambda f: send(LoadProgress(f)))
    except LlamaslotsError as exc:
        send(LoadFailed(exc))
        return
    except BaseException as exc:  # anything else is still a load failure, with its text
        send(LoadFailed(ModelLoadFailed(name, f"{type(exc).__name__}: {exc}")))
        return
    send(Ready(engine.info))
    commands = MessageReader(fd)
    try:
        while True:
            try:
                cmd: Command = commands.next()
            except (EOFError, OSError):
                break
            if isinstance(cmd, Stop):
                break
            engine.put(cmd)
    finally:
        engine.close()  # its last message is Stopped


class WorkerClient(EngineClient):
    """The engine in a worker process, over a pipe. One reader thread per worker delivers the
    worker's messages; if the worker dies, every request and query in flight fails at once
    with the reason (its exit status)."""

    def __init__(self, opts: LoadSettings, *, name: str, load_timeout: float = 600.0,
                 on_progress: Callable[[float], None] | None = None):
        super().__init__(name)
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=worker_main, args=(child, opts, name, logging.getLogger().level), name=f"llamaslots-{name}",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._send_lock = threading.Lock()
        self._incoming = MessageReader(self._conn.fileno(), from_plain=StepEvents.from_plain)
        deadline = time.monotonic() + load_timeout
        while True:
            if not self._incoming.pending() and not self._conn.poll(max(0.0, deadline - time.monotonic())):
                self._proc.kill()
                self._proc.join(5)
                self._conn.close()
                raise ModelLoadFailed(name, f"the model did not load within {load_timeout:.0f}s")
            try:
                msg = self._incoming.next()
            except (EOFError, OSError):
                self._proc.join(5)
                self._conn.close()
                raise ModelLoadFailed(name, f"the model's process exited while loading ({self._exit_text()})") from None
            if not isinstance(msg, LoadProgress):
                break
            if on_progress is not None:
                on_progress(msg.fraction)
        if isinstance(msg, LoadFailed):
            self._proc.join(10)
            self._conn.close()
            raise msg.error
        assert isinstance(msg, Ready)
        self.info = msg.info
        # Who reads the pipe: the asyncio loop the client is attached to (attach_loop), else a
        # reader thread, started on first use.
        self._reader: threading.Thread | None = None
        self._loop = None
        self._read_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def ended_how(self) -> str:
        code = self._proc.exitcode
        if code is None:
            return "running"
        if code < 0:
            try:
                return signal.Signals(-code).name
            except ValueError:
                return f"signal {-code}"
        return f"exit {code}"

    def _exit_text(self) -> str:
        """ended_how for a person: what the signal means and what to do about it."""
        code = self._proc.exitcode
        if code is None:
            return "still running"
        if code >= 0:
            return f"exit code {code}"
        how = self.ended_how
        hint = _SIGNAL_HINTS.get(how)
        return f"killed by {how}: {hint}" if hint else f"killed by {how}"

    def _not_running(self):
        reason = self.dead
        if not reason:
            # The pipe broke before the reader saw the end: the exit status says why (a
            # process whose pipe is gone has exited or is about to; this wait is short).
            self._proc.join(0.5)
            reason = f"the model's process ended ({self._exit_text()})"
        return super()._not_running_because(reason)

    def attach_loop(self, loop) -> None:
        """Read the pipe on this loop (add_reader): one wake-up per engine step, not a reader
        thread's plus the loop's."""
        with self._read_lock:
            if self._reader is not None:
                super().attach_loop(loop)  # a thread reads already: hop onto the loop
                return
            self._loop = loop
        super().attach_loop(loop)  # for what other threads deliver (a death seen by close)
        loop.add_reader(self._conn.fileno(), self._on_readable)
        # uvloop (libuv) makes a watched fd non-blocking. A pickled command bigger than the
        # socket buffer (a long prompt) then breaks off half-written with EAGAIN and the pipe
        # is garbage from there on. Blocking again, a write only waits for the worker's reader,
        # which never waits on us; a read on a readable fd never waits (server.wire keeps the
        # first part of a message until its tail comes).
        os.set_blocking(self._conn.fileno(), True)

    def _ensure_reader(self) -> None:
        with self._read_lock:
            if self._reader is None and self._loop is None:
                self._reader = threading.Thread(target=self._read, name=f"worker-reader-{self.name}", daemon=True)
                self._reader.start()

    def _on_readable(self) -> None:
        """On the loop: the messages one read brings (the loop's readiness is level-triggered,
        so it calls again while more wait)."""
        try:
            for msg in self._incoming.read_available():
                if isinstance(msg, Stopped):
                    raise EOFError
                self.deliver(msg, on_consumer=True)
        except (EOFError, OSError):
            self._stop_reading()
            self._await_exit(time.monotonic() + 5)

    def _stop_reading(self) -> None:
        loop = self._loop
        if loop is not None:
            try:
                loop.remove_reader(self._conn.fileno())
            except (ValueError, OSError):
                pass

    def _await_exit(self, deadline: float) -> None:
        """The pipe ended: wait (without blocking the loop) for the exit status, then fail
        what was in flight with it."""
        if self._proc.exitcode is None and time.monotonic() < deadline and self._loop is not None:
            self._loop.call_later(0.02, self._await_exit, deadline)
            return
        self._mark_dead(f"the model's process ended ({self._exit_text()})")

    def _transport(self, command: Command) -> bool:
        self._ensure_reader()
        with self._send_lock:
            if self.dead:
                return False
            try:
                write_message(self._conn.fileno(), command)
                return True
            except OSError:
                return False

    def _read(self) -> None:
        while True:
            try:
                msg: Message = self._incoming.next()
            except (EOFError, OSError):
                break
            if isinstance(msg, Stopped):
                break
            self.deliver(msg)
        self._proc.join(5)
        self._mark_dead(f"the model's process ended ({self._exit_text()})")

    @property
    def alive(self) -> bool:
        return self.dead is None and self._proc.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        with self._send_lock:
            try:
                write_message(self._conn.fileno(), Stop())
            except OSError:
                pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        if self._reader is not None:
            self._reader.join(5)
        self._mark_dead("the model was unloaded")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # add_reader/remove_reader belong to the loop's thread; the fd closes after.
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if on_loop:
                self._stop_reading()
            else:
                done = threading.Event()

                def detach() -> None:
                    self._stop_reading()
                    done.set()

                try:
                    loop.call_soon_threadsafe(detach)
                    done.wait(5)
                except RuntimeError:
                    pass
        self._conn.close()
