"""Tests for bench/pyspy_share.py: classifying py-spy raw stacks into decode / C / Python / waiting."""
from __future__ import annotations

import pytest

from bench.pyspy_share import classify, engine_share, main, parse_raw, report

P = 'process 10:"python -m server.cli run"'
W = 'process 11:"python worker"'
ENGINE = "thread (12): engine"
HTTP = "thread (10): MainThread"

DECODE = "Engine.step (server/engine/scheduler.py:80);PyCFuncPtr_call (_ctypes.c:4201);llama_decode (libllama.so);ggml_graph_compute (libggml-cpu.so.0)"
SAMPLE = "Engine.step (server/engine/scheduler.py:95);llama_sampler_sample (libllama.so)"
PYTHON = "Engine.step (server/engine/scheduler.py:60);Slot.add_tokens (server/engine/slot.py:33)"
GIL = "Engine.step (server/engine/scheduler.py:61);take_gil (ceval_gil.c:300);0x7f (libc.so.6)"
IO = "Engine._emit (server/engine/engine.py:70);Connection._send (multiprocessing/connection.py:384);os_write (libpython3.11.so.1.0);write (libc.so.6)"
WAIT = "Engine.run (server/engine/scheduler.py:20);Queue.get (queue.py:171);PyThread_acquire_lock_timed (libpython3.11.so.1.0);0x7f (libc.so.6)"
LOOP = "BaseEventLoop._run_once (asyncio/base_events.py:1884);select_epoll_poll (selectmodule.c.h:841);epoll_wait (libc.so.6)"
HANDLER = "BaseEventLoop._run_once (asyncio/base_events.py:1922);completions (server/api/openai.py:40)"

RAW = [
    f"{W};{ENGINE};{DECODE} 70",
    f"{W};{ENGINE};{SAMPLE} 5",
    f"{W};{ENGINE};{PYTHON} 15",
    f"{W};{ENGINE};{GIL} 10",
    f"{W};{ENGINE};{WAIT} 40",
    f"{W};{ENGINE};{IO} 25",
    f"{P};{HTTP};{LOOP} 30",
    f"{P};{HTTP};{HANDLER} 20",
]


def test_classify():
    assert classify(DECODE.split(";")) == "decode"
    assert classify(SAMPLE.split(";")) == "native_other"
    assert classify(PYTHON.split(";")) == "python"
    assert classify(GIL.split(";")) == "gil_wait"
    assert classify(WAIT.split(";")) == "waiting"
    assert classify(IO.split(";")) == "io"
    assert classify(LOOP.split(";")) == "waiting"


def test_engine_share_counts_only_working_samples_of_decoding_threads():
    threads = parse_raw(RAW)
    assert set(threads) == {(W, ENGINE), (P, HTTP)}
    assert threads[(W, ENGINE)].is_engine and not threads[(P, HTTP)].is_engine
    share = engine_share(threads)
    assert (share.decode, share.native_other, share.python, share.gil_wait, share.io) == (70, 5, 15, 10, 25)
    assert share.python_share == pytest.approx(25 / 125)
    assert threads[(P, HTTP)].samples["python"] == 20
    assert threads[(W, ENGINE)].python_leaves == {"Slot.add_tokens (server/engine/slot.py:33)": 15}


def test_report_names_the_share_and_hot_python_frames():
    text = report(parse_raw(RAW))
    assert "Python share of a step (Python + GIL wait): 20.0%; outside llama_decode: 44.0%" in text
    assert "Slot.add_tokens (server/engine/slot.py:33)" in text


def test_child_process_prefix_may_contain_semicolons():
    child = 'process 11:"python -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=3)"'
    threads = parse_raw([f"{P};{child};{ENGINE};{DECODE} 4"])
    assert list(threads) == [(child, ENGINE)]
    assert threads[(child, ENGINE)].samples["decode"] == 4


def test_report_without_decode_says_what_to_check():
    assert "No thread ran llama_decode" in report(parse_raw([f"{P};{HTTP};{LOOP} 3"]))


def test_malformed_line_is_an_error_naming_the_line(tmp_path, capsys):
    f = tmp_path / "x.raw"
    f.write_text(f"{P};{HTTP};{LOOP} 3\nnot a sample line\n")
    assert main([str(f)]) == 1
    assert "line 2: no sample count" in capsys.readouterr().err
