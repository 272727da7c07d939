"""Tests for the benchmark harness (bench/bench_slots.py) against a stand-in server."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.bench_slots import (
    BenchConfig,
    BenchError,
    CpuSnapshot,
    _group_cpu_s,
    LevelResult,
    RequestResult,
    ServerProcess,
    ServerSpec,
    bench_interleaved,
    bench_server,
    format_markdown,
    format_text_table,
    free_port,
    llamaslots_spec,
    bench_model_spec,
    describe_model,
    parse_concurrency,
    llama_cpp_python_spec,
    llama_server_spec,
    percentile,
    shared_prefix_prompt,
    run_level,
    write_llamaslots_config,
)

STANDIN = Path(__file__).with_name("standin_server.py")


def standin(tmp_path: Path, *extra: str) -> ServerProcess:
    port = free_port()
    spec = ServerSpec("standin", [sys.executable, str(STANDIN), "--port", str(port), *extra], port)
    return ServerProcess(spec, tmp_path / "logs")


def own_problems(level: LevelResult, max_tokens: int, n: int) -> list[str]:
    # Other processes' CPU use depends on what else runs on the test machine.
    return [p for p in level.problems(max_tokens, n) if not p.startswith("other processes")]


def test_level_counts_tokens_and_ttft_from_usage(tmp_path):
    server = standin(tmp_path)
    server.start()
    try:
        server.wait_ready(20)
        level = asyncio.run(run_level("standin", server.spec.base_url, 4, 2, 8, 30, server.proc.pid))
    finally:
        server.stop()
    assert len(level.requests) == 8
    assert {(r.client, r.index) for r in level.requests} == {(c, i) for c in range(4) for i in range(2)}
    assert all(r.completion_tokens == 8 and r.count_source == "usage" for r in level.requests)
    assert all(r.finish_reason == "length" and r.saw_done and r.error is None for r in level.requests)
    assert level.completion_tokens == 64
    assert level.tokens_per_s == pytest.approx(64 / level.wall_s)
    # 8 tokens at 2 ms each: the first token comes well before the whole answer.
    assert 0 < level.p50_ttft_s < min(r.latency_s for r in level.requests)
    assert level.p50_ttft_s <= level.p95_ttft_s
    # Each stream's chunks are timed: 7 gaps per 8-token answer, about the stand-in's 2 ms delay.
    assert all(len(r.chunk_times) == 8 for r in level.requests)
    assert 0.0015 < level.itl(50) < 0.1 and level.itl(50) <= level.itl(95)
    assert own_problems(level, 8, 8) == []
    assert level.cores() is not None
    assert server.proc.poll() is not None


def test_short_answers_without_usage_are_reported(tmp_path):
    server = standin(tmp_path, "--short-by", "3", "--no-usage")
    server.start()
    try:
        server.wait_ready(20)
        level = asyncio.run(run_level("standin", server.spec.base_url, 2, 1, 8, 30))
    finally:
        server.stop()
    assert [r.completion_tokens for r in level.requests] == [5, 5]
    assert all(r.count_source == "chunks" for r in level.requests)
    problems = "\n".join(level.problems(8, 2))
    assert "2 answers had != 8 tokens ([5])" in problems
    assert "finish_reason not 'length' (stop)" in problems
    assert "counted as text chunks" in problems


def test_without_usage_a_length_finish_counts_as_max_tokens(tmp_path):
    server = standin(tmp_path, "--no-usage", "--chunk-tokens", "3")
    server.start()
    try:
        server.wait_ready(20)
        level = asyncio.run(run_level("standin", server.spec.base_url, 1, 1, 8, 30))
    finally:
        server.stop()
    [r] = level.requests
    # 8 tokens arrive in 3 chunks (3+3+2): the chunk count is a lower bound, "length" is exact.
    assert (r.text_chunks, r.completion_tokens, r.count_source) == (3, 8, "length")
    assert own_problems(level, 8, 1) == []
    assert level.notes() == ["no usage in the stream: answers ending with finish_reason 'length' counted as max_tokens"]


def test_a_server_that_exits_is_reported_with_its_output(tmp_path):
    server = standin(tmp_path, "--fail")
    server.start()
    with pytest.raises(BenchError) as exc:
        server.wait_ready(20)
    assert "exited with status 3" in str(exc.value)
    assert "refusing to start (asked to fail)" in str(exc.value)


def test_a_missing_interpreter_is_a_bench_error(tmp_path):
    server = ServerProcess(ServerSpec("ghost", [str(tmp_path / "no-python"), "-V"], free_port()), tmp_path)
    with pytest.raises(BenchError, match="cannot start ghost"):
        server.start()


def test_a_server_that_never_answers_times_out(tmp_path):
    port = free_port()
    spec = ServerSpec("sleeper", [sys.executable, "-c", "import time; print('zzz', flush=True); time.sleep(60)"], port)
    server = ServerProcess(spec, tmp_path / "logs")
    server.start()
    with pytest.raises(BenchError) as exc:
        server.wait_ready(1.0)
    assert "not ready after 1 s" in str(exc.value) and "zzz" in str(exc.value)
    assert server.proc.poll() is not None  # stopped, not left behind


def test_level_timeout_cancels_and_marks_level(tmp_path):
    server = standin(tmp_path, "--token-delay", "0.5")
    server.start()
    try:
        server.wait_ready(20)
        level = asyncio.run(run_level("standin", server.spec.base_url, 2, 1, 50, 1.0))
    finally:
        server.stop()
    assert level.timed_out
    assert level.wall_s < 5
    assert any("timed out" in p for p in level.problems(50, 2))


def test_bench_server_runs_every_level_and_stops_the_server(tmp_path):
    log = tmp_path / "prompts.jsonl"
    server = standin(tmp_path, "--prompt-log", str(log))
    cfg = BenchConfig([1, 3], 2, 4, 30, ["standin"], ready_timeout_s=20, repeat=2)
    lines: list[str] = []
    out = bench_server(server, cfg, log=lines.append)
    assert sorted(out) == [1, 3]
    assert len(out[3].requests) == 6 and out[3].completion_tokens == 24
    assert len(out[3].attempts) == 2 and out[3].tokens_per_s == max(out[3].attempts)
    assert server.proc.poll() is not None
    assert sum("c=3" in line and "tok/s" in line for line in lines) == 2
    # warm-up + (1 + 3 clients) x 2 requests x 2 attempts, and no prompt is ever sent twice
    prompts = log.read_text().splitlines()
    assert len(prompts) == 1 + 16 and len(set(prompts)) == len(prompts)


def test_interleaved_servers_alternate_attempts_and_all_stop(tmp_path):
    a, b = standin(tmp_path / "a"), standin(tmp_path / "b")
    b.spec = ServerSpec("other", b.spec.argv, b.spec.port)
    cfg = BenchConfig([1, 2], 1, 3, 30, ["standin", "other"], ready_timeout_s=20, repeat=2)
    lines: list[str] = []
    out = bench_interleaved([a, b], cfg, log=lines.append)
    assert sorted(out) == ["other", "standin"]
    assert all(sorted(levels) == [1, 2] and all(len(lv.attempts) == 2 for lv in levels.values())
               for levels in out.values())
    order = [line.split("]")[0][1:] for line in lines if "tok/s" in line]
    # Level by level, the order swapped every repeat.
    assert order == ["standin", "other", "other", "standin"] * 2
    assert a.proc.poll() is not None and b.proc.poll() is not None


def _level(server: str, c: int, tokens: int, wall: float, ttft: float) -> LevelResult:
    reqs = [RequestResult(client=i, index=0, completion_tokens=tokens // c, count_source="usage",
                          ttft_s=ttft, finish_reason="length", saw_done=True) for i in range(c)]
    return LevelResult(server, c, reqs, wall)


def test_cpu_of_a_process_group_and_its_threads_is_measured():
    import subprocess

    # The CPU is burnt on a second thread: the per-thread split must put it there, not on main.
    burn = ("import threading, time\n"
            "def burn():\n    t = time.thread_time()\n    while time.thread_time() - t < 0.4: pass\n"
            "    time.sleep(30)  # alive, so that /proc still lists it\n"
            "threading.Thread(target=burn).start()\ntime.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", burn], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while _group_cpu_s(proc.pid)[0] < 0.35 and time.monotonic() < deadline:
            time.sleep(0.1)
        total, threads = _group_cpu_s(proc.pid)
        assert 0.35 <= total < 5
        assert "main" in threads and threads["main"] < 0.3
        worker = [v for k, v in threads.items() if k != "main"]
        assert worker and max(worker) >= 0.35
        assert _group_cpu_s(proc.pid + 10**7) == (0, {})  # no such group
    finally:
        proc.kill()
        proc.wait()


def test_busiest_threads_are_reported_per_completion_token():
    from bench.bench_slots import CpuSnapshot

    level = _level("llamaslots", 1, 100, 1.0, 0.05)
    level.cpu_before = CpuSnapshot(0, 0, 0, {"main": 1.0, "7/8": 5.0})
    level.cpu_after = CpuSnapshot(0, 0, 0, {"main": 1.02, "7/8": 5.15, "7/9": 0.001})
    ranked = level.thread_ms_per_token()
    assert [name for name, _ in ranked] == ["7/8", "main", "7/9"]  # a thread born mid-level counts from 0
    assert ranked[0][1] == pytest.approx(1000 * 0.15 / level.completion_tokens)


def test_cpu_of_other_processes_is_flagged():
    level = _level("llama-server", 1, 64, 2.0, 0.1)
    level.cpu_before = CpuSnapshot(busy_s=100.0, server_s=10.0, self_s=1.0)
    level.cpu_after = CpuSnapshot(busy_s=104.0, server_s=12.0, self_s=1.4)
    server, own, other = level.cores()
    assert (server, own, other) == pytest.approx((1.0, 0.2, 0.8))
    assert any("other processes kept 0.80 cores busy" in p for p in level.problems(64, 1))
    level.cpu_after = CpuSnapshot(busy_s=102.5, server_s=12.0, self_s=1.4)
    assert level.problems(64, 1) == []


def test_tables_show_ratios_against_llama_server_and_problems():
    cfg = BenchConfig([1, 8], 1, 64, 60, ["llamaslots", "llama-server", "llama-cpp-python"])
    results = {
        "llamaslots": {1: _level("llamaslots", 1, 64, 0.32, 0.05), 8: _level("llamaslots", 8, 512, 1.6, 0.2)},
        "llama-server": {1: _level("llama-server", 1, 64, 0.4, 0.04), 8: _level("llama-server", 8, 512, 3.2, 0.4)},
        "llama-cpp-python": {1: _level("llama-cpp-python", 1, 64, 0.8, 0.04), 8: _level("llama-cpp-python", 8, 512, 9.0, 4.0)},
    }
    results["llama-server"][8].requests[0].finish_reason = None
    for r in results["llama-server"][1].requests:
        r.count_source = "length"
    text = format_text_table(results, cfg)
    assert "Note: llama-server: no usage in the stream" in text
    assert "200.0" in text and "160.0" in text and "1.25x" in text
    assert "320.0" in text and "2.00x" in text
    assert "llama-server c=8: 1 finish_reason not 'length' (None)" in text
    md = format_markdown(results, cfg, "MODEL", "python bench/bench_slots.py", {"llama-server": "llama-server -m x"})
    # tok/s ratio 320/160, TTFT ratio 0.2/0.4: llamaslots against llama-server, not the slowest peer.
    assert "| 8 | llamaslots | 320.0 | 2.00x | 0.200 | 0.200 | 0.50x |" in md
    assert "| 8 | llama-cpp-python | 56.9 |  |" in md
    assert "Model: MODEL." in md and "`python bench/bench_slots.py`" in md and "(llama-server)" in md


def test_bench_model_is_the_shape_the_peers_were_measured_with():
    _, spec = bench_model_spec()
    assert describe_model(spec) == ("random-weight GGUF, llama arch, n_embd 512, 8 layers, 8 heads, "
                                    "n_ff 1536, vocab 8192 (llama tokenizer), Q8_0")


def test_table_with_one_server_has_no_ratio():
    cfg = BenchConfig([4], 1, 64, 60, ["llamaslots"])
    text = format_text_table({"llamaslots": {4: _level("llamaslots", 4, 256, 2.0, 0.1)}}, cfg)
    row = text.splitlines()[2].split()
    assert row == ["4", "llamaslots", "128.0", "—", "0.100", "0.100", "—", "—", "—"]


def test_percentiles_and_shared_prefix_prompts():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0
    a, b = shared_prefix_prompt(5, 1), shared_prefix_prompt(6, 1)
    common = len(__import__("os").path.commonprefix([a, b]))
    assert common > 1500 and a != b  # ~500 tokens shared, then each its own question
    assert shared_prefix_prompt(5, 9)[:common] != a[:common]  # another level: another system prompt


def test_llamaslots_config_is_a_localai_model_list(tmp_path):
    model = tmp_path / "models" / "m.gguf"
    path = write_llamaslots_config(tmp_path, model, threads=2, slots=16)
    assert yaml.safe_load(path.read_text()) == [{
        "name": "bench", "backend": "llama-cpp", "parameters": {"model": "m.gguf"},
        "context_size": 4096, "threads": 2, "options": ["parallel:16"],
    }]
    spec = llamaslots_spec("py", path, model.parent, 4321)
    assert spec.argv == ["py", "-m", "server.cli", "run", "--config-file", str(path),
                         "--models-path", str(model.parent), "--address", "127.0.0.1:4321"]


def test_llama_server_gets_llamaslots_settings():
    argv = llama_server_spec("/bin/llama-server", Path("/m/x.gguf"), 2, 16, 999).argv
    opt = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("-")}
    assert argv[0] == "/bin/llama-server" and opt["-m"] == "/m/x.gguf" and opt["-a"] == "bench"
    assert (opt["-np"], opt["-c"], opt["-t"], opt["-tb"], opt["-b"], opt["-ub"]) == ("16", "4096", "2", "2", "512", "512")
    assert "--kv-unified" in argv and opt["--fit"] == "off" and opt["--host"] == "127.0.0.1"


def test_llama_cpp_python_command_line():
    spec = llama_cpp_python_spec("py", Path("/m/x.gguf"), 2, 999, interrupt_requests=False)
    argv = spec.argv
    assert argv[:3] == ["py", "-m", "llama_cpp.server"]
    assert argv[argv.index("--n_threads") + 1] == "2"
    assert argv[argv.index("--interrupt_requests") + 1] == "false"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


def test_parse_concurrency():
    assert parse_concurrency("1,4, 8,16") == [1, 4, 8, 16]
    for bad in ("", "a,b", "0,2"):
        with pytest.raises(Exception):
            parse_concurrency(bad)


def test_wait_until_quiet_gives_up_after_its_limit(monkeypatch):
    import bench.bench_slots as bs

    calls = []
    monkeypatch.setattr(bs, "other_cores_now", lambda pgid: calls.append(pgid) or 1.5)
    lines: list[str] = []
    t0 = time.monotonic()
    assert bs.wait_until_quiet(7, 0.0, log=lines.append) < 0.5
    assert calls == [] and lines == ["  (no quiet moment within the --wait-quiet budget: measuring anyway)"]
    monkeypatch.setattr(bs, "other_cores_now", lambda pgid: calls.append(pgid) or 0.0)
    bs.wait_until_quiet(7, 5.0, log=lines.append)
    assert calls == [7] and len(lines) == 1
    assert time.monotonic() - t0 < 2


def test_paired_ratio_is_the_median_of_attempt_by_attempt_ratios():
    from bench.bench_slots import paired_ratio

    # Best-of would say 582/665 = 0.88x: one fast attempt of the peer decides it.
    assert paired_ratio([553.0, 553.0, 582.0], [559.0, 549.0, 665.0]) == pytest.approx(553 / 559)
    assert paired_ratio([1.0], [2.0]) is None  # one pair is no median
    assert paired_ratio([1.0, None, 3.0], [2.0, 1.0, 3.0]) == pytest.approx(0.75)
    assert paired_ratio([1.0, 2.0], [1.0, 2.0, 3.0]) is None  # attempts must pair up


def test_tables_show_paired_ratios_when_levels_were_repeated():
    from bench.bench_slots import table_rows

    cfg = BenchConfig([1], 1, 64, 60, ["llamaslots", "llama-server"])
    mine, peer = _level("llamaslots", 1, 64, 0.32, 0.05), _level("llama-server", 1, 64, 0.4, 0.04)
    mine.attempts, peer.attempts = [200.0, 190.0, 100.0], [100.0, 200.0, 100.0]
    mine.attempt_ttfts, peer.attempt_ttfts = [0.05, 0.06, 0.05], [0.05, 0.04, 0.10]
    row = [r for r in table_rows({"llamaslots": {1: mine}, "llama-server": {1: peer}}, cfg) if r[1] == "llamaslots"][0]
    assert row[-2:] == ["1.00x", "1.00x"]
