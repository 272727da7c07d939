"""A model in its own process: same results, load errors with llama.cpp's reason, crash isolation."""
from __future__ import annotations

import os
import signal

import pytest

from compat.model_settings import LoadSettings
from server.engine.types import Failed, GenerateRequest, TextDelta
from server.errors import EngineFailed, ModelLoadFailed
from server.worker import WorkerClient
from tests.engine.conftest import Run, greedy, submit
from tests.gguf_models import SCRIPTED_CASES


@pytest.fixture
def worker(gguf_path):
    w = WorkerClient(LoadSettings(model_path=gguf_path("spm-scripted"), n_ctx=2048, n_slots=2, n_threads=2), name="w")
    yield w
    w.close()


def test_worker_gives_the_engines_exact_outputs(worker):
    runs = {n: submit(worker, c.prompt, greedy(c.max_tokens, c.stop)) for n, c in SCRIPTED_CASES.items()}
    for n, c in SCRIPTED_CASES.items():
        r = runs[n].wait()
        assert (r.text, r.end.reason) == (c.text, c.finish), n
    assert worker.tokenize("one", add_special=True, parse_special=True).result(10)[0] == 1


def test_load_failure_reports_llama_cpp_reason(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    with pytest.raises(ModelLoadFailed) as info:
        WorkerClient(LoadSettings(model_path=bad, n_ctx=256, n_slots=1, n_threads=1), name="broken")
    msg = info.value.message
    assert "broken" in msg and "could not load model" in msg
    # More than a bare "failed to load": llama.cpp's own words about the file.
    assert "unknown model architecture" in info.value.reason, info.value.reason


def test_missing_model_file_is_a_clear_load_error(tmp_path):
    with pytest.raises(ModelLoadFailed, match="not found"):
        WorkerClient(LoadSettings(model_path=tmp_path / "nope.gguf", n_slots=1, n_threads=1), name="nope")


def test_a_crashed_worker_fails_only_its_requests(worker, gguf_path):
    looping = Run()

    def sink(ev):
        looping.sink(ev)
        if isinstance(ev, TextDelta) and len(looping.deltas) == 2:
            os.kill(worker.pid, signal.SIGKILL)  # what a GGML_ASSERT abort does to a process

    worker.submit(GenerateRequest("The", greedy(None)), sink)
    looping.wait(30)
    assert isinstance(looping.end, Failed) and isinstance(looping.end.error, EngineFailed)
    assert "SIGKILL" in looping.end.error.message
    assert not worker.alive
    # Later calls fail fast with the reason instead of hanging.
    late = submit(worker, "one", greedy(4)).wait(5)
    assert isinstance(late.end, Failed) and "not running" in late.end.error.message
    # This process (the front-end) is fine: another worker on the same file works.
    other = WorkerClient(LoadSettings(model_path=gguf_path("spm-scripted"), n_ctx=512, n_slots=1, n_threads=2), name="w2")
    try:
        assert submit(other, "one", greedy(None)).wait().text == " two three four five"
    finally:
        other.close()


def test_an_illegal_instruction_says_what_to_do(gguf_path):
    # What ggml's AMX kernels do on some Xeons (see the Makefile): the reason says how to fix it.
    worker = WorkerClient(LoadSettings(model_path=gguf_path("spm-scripted"), n_ctx=512, n_slots=1, n_threads=2), name="ill")
    try:
        os.kill(worker.pid, signal.SIGILL)
        late = submit(worker, "one", greedy(4)).wait(10)
        assert isinstance(late.end, Failed)
        assert "killed by SIGILL: llama.cpp ran an instruction this CPU refuses" in late.end.error.message
        assert "make rebuild-llama" in late.end.error.message
    finally:
        worker.close()
