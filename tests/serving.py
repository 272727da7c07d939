"""Start `llamaslots run` as a user would (a subprocess on a free loopback port) for tests."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    """Until `url` answers 200; fails with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_server(config: Path, models: Path, log_path: Path, env: dict[str, str] | None = None,
                   args: tuple[str, ...] = ()) -> Iterator[str]:
    """Yields the base URL once /readyz answers 200; stops the server afterwards."""
    with server_process(config, models, log_path, env, args) as (base, _):
        yield base


@contextlib.contextmanager
def server_process(
    config: Path, models: Path, log_path: Path, env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Like running_server, also yielding the process (for tests that signal it)."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "run", "--config-file", str(config),
             "--models-path", str(models), "--address", f"127.0.0.1:{port}", *args],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_answering(base + "/readyz", proc, log_path)
            yield base, proc
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
