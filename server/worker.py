"""A model in its own process: the worker's main loop, and WorkerClient, the front-end's side of its pipe.

llama.cpp aborts the whole process on some misuse (GGML_ASSERT) and does not always give
memory back when a model is freed. With one process per resident model, a crash fails
only that model's requests and an unload really frees its memory.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading

from compat.model_settings import LoadSettings
from server.engine.client import EngineClient
from server.engine.messages import Command, LoadFailed, Message, Ready, Stop, Stopped
from server.errors import LlamaslotsError, ModelLoadFailed

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

    send_lock = threading.Lock()

    def send(msg: Message) -> None:
        with send_lock:
            try:
                conn.send(msg)
            except (OSError, EOFError, BrokenPipeError):
                pass  # the front-end is gone; the stop message or EOF ends us

    try:
        engine = Engine(opts, name=name, emit=send)
    except LlamaslotsError as exc:
        send(LoadFailed(exc))
        return
    except BaseException as exc:  # anything else is still a load failure, with its text
        send(LoadFailed(ModelLoadFailed(name, f"{type(exc).__name__}: {exc}")))
        return
    send(Ready(engine.info))
    try:
        while True:
            try:
                cmd: Command = conn.recv()
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

    def __init__(self, opts: LoadSettings, *, name: str, load_timeout: float = 600.0):
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
        if not self._conn.poll(load_timeout):
            self._proc.kill()
            raise ModelLoadFailed(name, f"the model did not load within {load_timeout:.0f}s")
        try:
            msg = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            raise ModelLoadFailed(name, f"the model's process exited while loading ({self._exit_text()})") from None
        if isinstance(msg, LoadFailed):
            self._proc.join(10)
            raise msg.error
        assert isinstance(msg, Ready)
        self.info = msg.info
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
                signame = signal.Signals(-code).name
            except ValueError:
                return f"killed by signal {-code}"
            hint = _SIGNAL_HINTS.get(signame)
            return f"killed by {signame}: {hint}" if hint else f"killed by {signame}"
        return f"exit code {code}"

    def _not_running(self):
        reason = self.dead
        if not reason:
            # The pipe broke before the reader saw the end: the exit status says why (a
            # process whose pipe is gone has exited or is about to; this wait is short).
            self._proc.join(0.5)
            reason = f"the model's process ended ({self._exit_text()})"
        return super()._not_running_because(reason)

    def _transport(self, command: Command) -> bool:
        with self._send_lock:
            if self.dead:
                return False
            try:
                self._conn.send(command)
                return True
            except (OSError, EOFError, BrokenPipeError):
                return False

    def _read(self) -> None:
        while True:
            try:
                msg: Message = self._conn.recv()
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
        self._transport(Stop())
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._reader.join(5)
        self._mark_dead("the model was unloaded")
        self._conn.close()
