"""SIGTERM while answers are being generated: they finish within the grace, else end with a reason."""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import httpx
import pytest

from tests.serving import server_process

CONFIG = """
- name: looping
  context_size: 16384
  threads: 2
  parameters:
    model: spm-scripted.gguf
    temperature: 0
  template:
    completion: "{{.Input}}"
"""
# Enough tokens that both answers are still running when the signal comes: at 400 they
# sometimes both ended in the milliseconds between seeing two busy slots and the signal.
MANY = 3000


@pytest.fixture
def models(tmp_path, gguf_path):
    shutil.copy(gguf_path("spm-scripted"), tmp_path / "spm-scripted.gguf")
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path


def _stream(base: str, max_tokens: int | None, out: dict, first_chunk: threading.Event) -> None:
    body = {"model": "looping", "prompt": "The", "stream": True}
    if max_tokens:
        body["max_tokens"] = max_tokens
    try:
        with httpx.stream("POST", base + "/v1/completions", json=body, timeout=60) as r:
            out["status"] = r.status_code
            out["data"] = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    out["data"].append(line[6:])
                    first_chunk.set()
    except httpx.HTTPError as exc:  # an incomplete body is what this test guards against
        out["error"] = repr(exc)
    first_chunk.set()


def _plain(base: str, max_tokens: int | None, out: dict) -> None:
    body = {"model": "looping", "prompt": "The"}
    if max_tokens:
        body["max_tokens"] = max_tokens
    r = httpx.post(base + "/v1/completions", json=body, timeout=60)
    out["status"], out["body"] = r.status_code, r.json()


def _sigterm_during(models, tmp_path, grace: str, max_tokens: int | None):
    streamed, plain, first_chunk = {}, {}, threading.Event()
    env = {"LLAMASLOTS_SHUTDOWN_GRACE": grace}
    with server_process(models / "config.yaml", models, tmp_path / "server.log", env) as (base, proc):
        threads = [threading.Thread(target=_stream, args=(base, max_tokens, streamed, first_chunk)),
                   threading.Thread(target=_plain, args=(base, max_tokens, plain))]
        for t in threads:
            t.start()
        assert first_chunk.wait(30)
        _until_both_run(base)
        workers = _children_of(proc.pid)
        proc.terminate()
        for t in threads:
            t.join(60)
        # uvicorn re-raises the signal it handled once shutdown is done.
        assert proc.wait(30) in (0, -signal.SIGTERM)
    assert workers and not _still_running(workers)
    return streamed, plain, (tmp_path / "server.log").read_text()


def _until_both_run(base: str) -> None:
    """Until the streamed and the non-streamed request both hold a slot (a fixed sleep was
    sometimes too long: both had ended before the signal, and there was nothing to drain)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(s["is_processing"] for s in httpx.get(base + "/slots", timeout=5).json()) >= 2:
            return
        time.sleep(0.005)
    raise AssertionError("the two requests never ran together")


def _still_running(pids: list[int], wait_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + wait_s
    while True:
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_answers_in_flight_finish_within_the_grace(models, tmp_path):
    streamed, plain, log = _sigterm_during(models, tmp_path, "30s", max_tokens=MANY)
    assert "error" not in streamed, streamed.get("error")
    assert streamed["data"][-1] == "[DONE]"
    last = json.loads(streamed["data"][-2])
    assert last["choices"][0]["finish_reason"] == "length"
    text = "".join(json.loads(d)["choices"][0]["text"] for d in streamed["data"][:-1])
    assert plain["status"] == 200
    assert plain["body"]["choices"][0]["text"] == text
    assert plain["body"]["usage"]["completion_tokens"] == MANY
    assert "request(s) in flight get up to 30s" in log


def test_answers_outliving_the_grace_end_with_an_error_not_a_cut(models, tmp_path):
    # No max_tokens: the looping model would run to its 16384-token context.
    streamed, plain, log = _sigterm_during(models, tmp_path, "0.3", max_tokens=None)
    assert "error" not in streamed, streamed.get("error")
    # As on any failed stream: a last event carrying the error (the openai client raises it).
    err = json.loads(streamed["data"][-1])["error"]
    assert err["code"] == 503 and "stopping" in err["message"]
    assert plain["status"] == 503 and "stopping" in plain["body"]["error"]["message"]
    assert "cancelling 2 request(s) still running after 0.3s" in log


def test_a_second_ctrl_c_stops_at_once(models, tmp_path):
    streamed, first_chunk = {}, threading.Event()
    env = {"LLAMASLOTS_SHUTDOWN_GRACE": "60"}
    with server_process(models / "config.yaml", models, tmp_path / "server.log", env) as (base, proc):
        stream = threading.Thread(target=_stream, args=(base, None, streamed, first_chunk))
        stream.start()
        assert first_chunk.wait(30)
        workers = _children_of(proc.pid)
        assert workers  # the model's own process
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # draining: the answer may run for up to 60 s
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)  # uvicorn: a second Ctrl-C forces the exit
        proc.wait(10)
        assert time.monotonic() - started < 5
        stream.join(30)
    # The model's process went with the server (an orphan would live on, reparented).
    assert not _still_running(workers)


def _children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out
