"""Operating a running server: /metrics adding up to the answers, LocalAI's backend endpoints, /slots, keys."""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.serving import running_server

KEY = "op-s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}

CONFIG = """
- name: scripted
  context_size: 512
  threads: 1
  parameters: {model: spm-scripted.gguf, temperature: 0}
  template: {completion: "{{.Input}}", chat: "{{.Input}}"}
- name: random
  context_size: 2048
  threads: 1
  parameters: {model: spm-random.gguf, temperature: 0}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, gguf_path):
    models = tmp_path_factory.mktemp("opmodels")
    for name in ("spm-scripted", "spm-random"):
        shutil.copy(gguf_path(name), models / f"{name}.gguf")
    (models / "config.yaml").write_text(CONFIG)
    log = models / "server.log"
    env = {"LOCALAI_API_KEY": KEY, "LOCALAI_PARALLEL_REQUESTS": "true", "LLAMACPP_PARALLEL": "4"}
    with running_server(models / "config.yaml", models, log, env) as base:
        yield base, log


def client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers=AUTH, timeout=120)


def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    """/metrics as {(name, labels): value}."""
    text = httpx.get(base + "/metrics", headers=AUTH, timeout=30).text
    out: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, labels = head, frozenset()
        if "{" in head:
            name, rest = head.split("{", 1)
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        out[(name, labels)] = float(value)
    return out


def metric(m: dict, name: str, **labels: str) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


NEW_ENDPOINTS = [
    ("GET", "/metrics", None), ("GET", "/system", None), ("GET", "/version", None), ("GET", "/slots", None),
    ("GET", "/requests", None), ("GET", "/", None), ("GET", "/backend/monitor?model=scripted", None),
    ("POST", "/backend/shutdown", {"model": "scripted"}), ("POST", "/backend/load", {"model": "scripted"}),
    ("POST", "/v1/detokenize", {"model": "scripted", "tokens": [1]}),
    ("POST", "/detokenize", {"model": "scripted", "tokens": [1]}),
]


@pytest.mark.parametrize("method,path,body", NEW_ENDPOINTS)
def test_every_operator_endpoint_refuses_a_missing_or_wrong_key(server, method, path, body):
    base, _ = server
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.request(method, base + path, json=body, headers=headers, timeout=30)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["type"] == "authentication_error"


def test_probes_stay_open_and_report_loading(server):
    base, _ = server
    r = httpx.get(base + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["loading"] == {}
    assert httpx.get(base + "/healthz").status_code == 200


def test_status_page_asks_a_browser_for_the_key_and_takes_it_as_a_cookie(server):
    base, _ = server
    r = httpx.get(base + "/", headers={"Accept": "text/html"})
    assert r.status_code == 401 and "<form" in r.text and "token=" in r.text
    r = httpx.get(base + "/", cookies={"token": KEY}, headers={"Accept": "text/html"})
    assert r.status_code == 200 and "<table id=\"slots\">" in r.text
    # The page's own data calls carry the cookie too.
    assert httpx.get(base + "/slots", cookies={"token": KEY}).status_code == 200
    assert httpx.get(base + "/slots", cookies={"token": "wrong"}).status_code == 401


def test_counters_add_up_to_the_usage_answers_reported_under_concurrent_load(server):
    base, _ = server
    with client(base) as c:
        c.post("/v1/completions", json={"model": "scripted", "prompt": "one"}).raise_for_status()  # loaded
    before = scrape(base)

    def non_streamed(i: int) -> dict:
        with client(base) as c:
            if i % 2:
                r = c.post("/v1/completions", json={"model": "scripted", "prompt": "one", "n": 1 + i % 3})
            else:
                r = c.post("/v1/chat/completions", json={"model": "scripted", "messages": [
                    {"role": "user", "content": "one"}]})
            r.raise_for_status()
            return r.json()["usage"]

    def streamed(i: int) -> dict:
        usage = None
        body = {"model": "scripted", "prompt": "one", "stream": True, "stream_options": {"include_usage": True}}
        with client(base) as c, c.stream("POST", "/v1/completions", json=body) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and '"usage":{' in line:
                    usage = json.loads(line[6:])["usage"]
        assert usage is not None
        return usage

    jobs = [(non_streamed, i) for i in range(8)] + [(streamed, i) for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        usages = list(pool.map(lambda job: job[0](job[1]), jobs))
    after = scrape(base)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("llamaslots_prompt_tokens_total", model="scripted") == sum(u["prompt_tokens"] for u in usages)
    assert delta("llamaslots_completion_tokens_total", model="scripted") == sum(u["completion_tokens"] for u in usages)
    assert delta("llamaslots_prompt_cached_tokens_total", model="scripted") == sum(
        u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    assert sum(u["completion_tokens"] for u in usages) > 0
    # Every request is counted once, by endpoint and status, and timed.
    assert delta("llamaslots_requests_total", model="scripted", endpoint="/v1/completions", status="200") == 10
    assert delta("llamaslots_requests_total", model="scripted", endpoint="/v1/chat/completions", status="200") == 4
    assert delta("llamaslots_request_duration_seconds_count", model="scripted") == 14
    # One first token per generation (n choices are n generations), and gaps between the rest.
    generations = sum(1 + i % 3 for i in range(1, 8, 2)) + 4 + 6
    assert delta("llamaslots_time_to_first_token_seconds_count", model="scripted") == generations
    assert delta("llamaslots_inter_token_latency_seconds_count", model="scripted") > 0
    # The engine's own counts of the step: every completion token was sampled by it.
    assert delta("llamaslots_tokens_sampled_total", model="scripted") >= delta(
        "llamaslots_completion_tokens_total", model="scripted")
    assert metric(after, "llamaslots_slots_busy", model="scripted") + metric(
        after, "llamaslots_slots_idle", model="scripted") == 4
    assert metric(after, "llamaslots_kv_cells", model="scripted") == 512
    # A refused request is counted with its status (and no model when none was resolved).
    httpx.post(base + "/v1/completions", headers=AUTH, json={"model": "nope", "prompt": "x"})
    assert metric(scrape(base), "llamaslots_requests_total", model="", endpoint="/v1/completions",
                  status="404") >= 1


def _pid(base: str, model: str) -> int:
    with client(base) as c:
        r = c.get("/backend/monitor", params={"model": model})
    r.raise_for_status()
    body = r.json()
    assert body["state"] in ("READY", "BUSY"), body
    assert body["memory"]["breakdown"]["rss"] > 0 and body["memory"]["total"] > 0
    return body["pid"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purposes only if it is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except OSError:
        return True


def test_backend_shutdown_unloads_the_process_and_the_next_request_loads_it_again(server):
    base, _ = server
    with client(base) as c:
        c.post("/v1/completions", json={"model": "random", "prompt": "The", "max_tokens": 2}).raise_for_status()
        pid = _pid(base, "random")
        before = scrape(base)
        assert {"id": "random"} in c.get("/system").json()["loaded_models"]

        r = c.post("/backend/shutdown", json={"model": "random"})
        assert r.status_code == 200, r.text
        assert _gone(pid)
        assert {"id": "random"} not in c.get("/system").json()["loaded_models"]
        assert c.get("/backend/monitor", params={"model": "random"}).json()["state"] == "UNINITIALIZED"
        # Not loaded any more, or never configured: 404 in LocalAI's error shape.
        r = c.post("/backend/shutdown", json={"model": "random"})
        assert r.status_code == 404 and r.json()["error"]["code"] == 404 and "not loaded" in r.json()["error"]["message"]
        r = c.post("/backend/shutdown", json={"model": "no-such-model"})
        assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
        r = c.post("/backend/shutdown", json={})
        assert r.status_code == 400 and "model is required" in r.json()["error"]["message"]
        # A POST that unloads takes its model from a JSON body only (no cross-site form or query).
        r = c.post("/backend/shutdown", params={"model": "scripted"})
        assert r.status_code == 400 and "model is required" in r.json()["error"]["message"]

        r = c.post("/v1/completions", json={"model": "random", "prompt": "The", "max_tokens": 2})
        assert r.status_code == 200, r.text
        assert _pid(base, "random") != pid
    after = scrape(base)
    assert metric(after, "llamaslots_model_unloads_total", model="random", reason="request") == metric(
        before, "llamaslots_model_unloads_total", model="random", reason="request") + 1
    assert metric(after, "llamaslots_model_loads_total", model="random") == metric(
        before, "llamaslots_model_loads_total", model="random") + 1
    assert metric(after, "llamaslots_model_load_duration_seconds_count", model="random") == metric(
        after, "llamaslots_model_loads_total", model="random")


def test_backend_load_loads_a_model_before_any_request(server):
    base, _ = server
    with client(base) as c:
        c.post("/backend/shutdown", json={"model": "random"})  # loaded or not
        r = c.post("/backend/load", json={"model": "random"})
        assert r.status_code == 200 and "random" in r.json()["loaded"], r.text
        assert {"id": "random"} in c.get("/system").json()["loaded_models"]
        assert c.post("/backend/load", json={"model": "nope"}).status_code == 404


def test_a_killed_worker_is_started_again_and_counted_with_its_signal(server):
    base, log = server
    with client(base) as c:
        c.post("/v1/completions", json={"model": "random", "prompt": "The", "max_tokens": 2}).raise_for_status()
        pid = _pid(base, "random")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Until the front-end has noticed the closed pipe (a fixed wait is a race on a busy machine).
        deadline = time.monotonic() + 10
        while "it is started again on its next request, not now" not in log.read_text():
            assert time.monotonic() < deadline, "the worker's death was not noticed"
            time.sleep(0.05)
        r = c.post("/v1/completions", json={"model": "random", "prompt": "The", "max_tokens": 2})
        assert r.status_code == 200, r.text
    m = scrape(base)
    assert metric(m, "llamaslots_worker_restarts_total", model="random", signal="SIGKILL") == 1
    # It died seconds after loading: not restarted at once (a crash loop), but on the request.
    assert "it is started again on its next request, not now" in log.read_text()
    assert metric(m, "llamaslots_model_unloads_total", model="random", reason="died") == 1


def test_detokenize_inverts_tokenize_and_names_a_bad_token(server):
    base, _ = server
    with client(base) as c:
        tokens = c.post("/v1/tokenize", json={"model": "scripted", "content": "one two"}).json()["tokens"]
        r = c.post("/v1/detokenize", json={"model": "scripted", "tokens": tokens})
        # An SPM vocabulary's word-start marker becomes a space; only after BOS does llama.cpp drop it.
        assert r.status_code == 200 and r.json() == {"content": " one two"}
        r = c.post("/v1/detokenize", json={"model": "scripted", "tokens": [10 ** 6]})
        assert r.status_code == 400 and "outside the vocabulary" in r.json()["error"]["message"]
        r = c.post("/v1/detokenize", json={"model": "scripted", "tokens": "abc"})
        assert r.status_code == 400 and "tokens" in r.json()["error"]["message"]


def test_version_names_the_server_and_llama_cpp_python(server):
    base, _ = server
    with client(base) as c:
        v = c.get("/version").json()["version"]
    assert v.startswith("llamaslots ") and "llama-cpp-python 0.3" in v


def _long_stream(base: str, stop: threading.Event, headers: dict[str, str], max_tokens: int = 1900) -> None:
    body = {"model": "random", "prompt": "The", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as c, c.stream(
            "POST", "/v1/completions", json=body) as r:
        for _ in r.iter_lines():
            if stop.is_set():
                return


def _generating_slot(base: str, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        slots = httpx.get(base + "/slots", headers=headers, timeout=10).json()
        for s in slots:
            if s["model"] == "random" and s["state"] == "generating" and s["next_token"]["n_decoded"] > 0:
                return s
        time.sleep(0.02)
    raise AssertionError(f"no slot started generating: {slots}")


def test_slots_show_a_running_generation_in_llama_servers_shape(server):
    base, log = server
    stop = threading.Event()
    t = threading.Thread(target=_long_stream, args=(base, stop, AUTH))
    t.start()
    try:
        s = _generating_slot(base, AUTH)
        assert s["is_processing"] is True and s["id_task"] > 0 and s["n_ctx"] == 2048  # unified cache: one request may use all of it
        assert s["n_prompt_tokens"] >= 1 and s["next_token"]["has_next_token"] is True
        with client(base) as c:
            mon = c.get("/backend/monitor", params={"model": "random"}).json()
            assert mon["state"] == "BUSY" and any(x["state"] == "generating" for x in mon["slots"])
            recent = c.get("/requests").json()["requests"]
            assert recent and {"at", "method", "endpoint", "model", "status", "seconds", "error"} <= set(recent[0])
    finally:
        stop.set()
        t.join(60)
    # Loading logs its progress and how long it took.
    text = log.read_text()
    assert "loading 0%" in text and "loading 100%" in text and "ready in" in text


def test_disable_metrics_endpoint(tmp_path, gguf_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(gguf_path("spm-scripted"), models / "spm-scripted.gguf")
    (models / "config.yaml").write_text(CONFIG.split("- name: random")[0])
    with running_server(models / "config.yaml", models, tmp_path / "server.log",
                        {"LOCALAI_DISABLE_METRICS_ENDPOINT": "true"}) as base:
        assert httpx.get(base + "/metrics").status_code == 404
        assert httpx.get(base + "/system").status_code == 200
