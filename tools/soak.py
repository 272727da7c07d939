"""Dev-only soak: thousands of mixed requests against `llamaslots run` on two generated models under
--single-active-backend (swaps), 32 concurrent, with n > 1, tools, grammars, json_object and random
client disconnects; checks every scripted answer, that all slots are free at the end and how much
memory the processes gained.

Not run in CI. Usage: .venv/bin/python tools/soak.py [REQUESTS=2000] [CONCURRENCY=32] [WORKDIR]
Prints the counts (answered, refused with a 4xx/503 and why, disconnected, failed), the slots'
states afterwards and the RSS of the front-end and each model process; exits 1 on any failure
(a 5xx other than a clean 503, a wrong answer, a hang, a busy slot after the run, or memory growth
past the bounds below). The server log is WORKDIR/server.log.
"""
from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import httpx  # noqa: E402

from server.procinfo import process_usage  # noqa: E402
from tests.gguf_models import MODELS  # noqa: E402
from tests.serving import server_process  # noqa: E402

REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
CONCURRENCY = int(sys.argv[2]) if len(sys.argv) > 2 else 32
WORK = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="llamaslots-soak-"))
# Bounds: the front-end may grow by this much over the run; a model process may end at most
# this many times its size after warm-up (it is restarted by every swap anyway).
FRONT_END_GROWTH_MB = 150
WORKER_GROWTH = 1.5

CONFIG = """
- name: scripted
  context_size: 1024
  threads: 1
  options: ["parallel:4"]
  parameters: {model: spm-scripted.gguf, temperature: 0}
  template: {completion: "{{.Input}}", chat: "{{.Input}}\\n"}
- name: chatml
  context_size: 1024
  threads: 1
  options: ["parallel:4"]
  parameters: {model: bpe-chatml.gguf, temperature: 0}
  template: {use_tokenizer_template: true}
"""
EXPECT = {"one": " two three four five", "Hello": " world!", "special": " after", "unicode": " café 中文🦙"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
stats: dict = {"answered": 0, "refused": {}, "disconnected": 0, "failed": {}}


def count(bucket: str, key: str) -> None:
    stats[bucket][key] = stats[bucket].get(key, 0) + 1


def request() -> tuple[str, dict, str]:
    """(path, body, what to check)"""
    stream = random.random() < 0.5
    n = random.choice([1, 1, 1, 2, 3])
    r = random.random()
    if r < 0.45:
        p = random.choice(list(EXPECT))
        return "/v1/completions", {"model": "scripted", "prompt": p, "stream": stream, "n": n}, "expect:" + p
    if r < 0.6:
        body = {"model": "scripted", "prompt": "one", "stream": stream, "n": n, "max_tokens": 6,
                "grammar": 'root ::= "yes" | "no"', "ignore_eos": random.random() < 0.5}
        return "/v1/completions", body, "grammar"
    if r < 0.75:
        body = {"model": "chatml", "messages": [{"role": "user", "content": "hi"}], "stream": stream, "n": n,
                "tools": TOOLS, "tool_choice": random.choice(["auto", "none"])}
        return "/v1/chat/completions", body, "tools"
    if r < 0.85:
        body = {"model": "chatml", "messages": [{"role": "user", "content": "hi"}], "stream": stream,
                "response_format": {"type": "json_object"}, "max_tokens": 24}
        return "/v1/chat/completions", body, "json"
    return "/v1/chat/completions", {"model": "chatml", "messages": [{"role": "user", "content": "hi"}],
                                    "stream": stream, "n": n}, "chat"


def check(what: str, texts: list[str], n: int) -> None:
    assert len(texts) == n, (what, texts)
    if what.startswith("expect:"):
        want = EXPECT[what[7:]]
        assert all(t == want for t in texts), (what, texts)
    elif what == "grammar":
        assert all(t in ("yes", "no") for t in texts), texts
    elif what == "chat":
        assert all(t == "Hello world!" for t in texts), texts


async def one(c: httpx.AsyncClient, base: str) -> None:
    path, body, what = request()
    n = body.get("n", 1)
    disconnect = random.random() < 0.15
    try:
        if body["stream"]:
            texts: dict[int, str] = {}
            async with c.stream("POST", base + path, json=body, timeout=120) as r:
                if r.status_code != 200:
                    raw = json.loads(await r.aread())
                    return _refused(r.status_code, raw)
                async for line in r.aiter_lines():
                    if disconnect and random.random() < 0.3:
                        stats["disconnected"] += 1
                        return
                    if line.startswith("data: ") and line != "data: [DONE]":
                        ev = json.loads(line[6:])
                        if "error" in ev:
                            return _refused(ev["error"]["code"], ev)
                        for ch in ev.get("choices", []):
                            piece = ch.get("text") or (ch.get("delta") or {}).get("content") or ""
                            texts[ch["index"]] = texts.get(ch["index"], "") + piece
            check(what, [texts.get(i, "") for i in range(n)], n)
        else:
            if disconnect:
                try:
                    await c.post(base + path, json=body, timeout=0.02)
                except httpx.TimeoutException:
                    stats["disconnected"] += 1
                    return
            r = await c.post(base + path, json=body, timeout=120)
            if r.status_code != 200:
                return _refused(r.status_code, r.json())
            choices = r.json()["choices"]
            check(what, [ch.get("text") if "text" in ch else (ch["message"].get("content") or "") for ch in choices],
                  n)
        stats["answered"] += 1
    except Exception as e:  # noqa: BLE001 - counted and reported
        count("failed", f"{type(e).__name__}: {str(e)[:150]}")


def _refused(status: int, body: dict) -> None:
    message = body.get("error", {}).get("message", "")[:90]
    if status >= 500 and status != 503:
        count("failed", f"{status}: {message}")
    else:
        count("refused", f"{status}: {message}")


def rss_mb(pid: int | None) -> float:
    usage = process_usage(pid) if pid else None
    return usage.memory["rss"] / 2**20 if usage else 0.0


async def main(base: str, front_pid: int) -> int:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY + 8)) as c:
        # Warm-up: each model once, its process's memory right after (the baseline).
        w0: dict[str, float] = {}
        for m in ("scripted", "chatml"):
            (await c.post(base + "/v1/completions", json={"model": m, "prompt": "one", "max_tokens": 2},
                          timeout=60)).raise_for_status()
            w0[m] = rss_mb((await c.get(base + "/backend/monitor", params={"model": m})).json().get("pid"))
        front0 = rss_mb(front_pid)
        left = REQUESTS
        started = time.monotonic()

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one(c, base)

        await asyncio.wait_for(asyncio.gather(*[worker() for _ in range(CONCURRENCY)]), 3600)
        wall = time.monotonic() - started
        await asyncio.sleep(1.0)  # cancelled requests free their slots at the next step
        slots = (await c.get(base + "/slots")).json()
        busy = [s for s in slots if s["is_processing"]]
        t = time.monotonic()
        for m in ("scripted", "chatml", "scripted"):
            r = await c.post(base + "/v1/completions", json={"model": m, "prompt": "one", "max_tokens": 4}, timeout=60)
            assert r.status_code == 200, r.text
        probe = time.monotonic() - t
        front1 = rss_mb(front_pid)
        w1 = {m["id"]: rss_mb((await c.get(base + "/backend/monitor", params={"model": m["id"]})).json().get("pid"))
              for m in (await c.get(base + "/system")).json()["loaded_models"]}
    print(f"{REQUESTS} requests, {CONCURRENCY} concurrent, in {wall:.0f}s: answered {stats['answered']}, "
          f"disconnected {stats['disconnected']}, refused {sum(stats['refused'].values())}, "
          f"failed {sum(stats['failed'].values())}")
    for bucket in ("refused", "failed"):
        for k, v in sorted(stats[bucket].items(), key=lambda kv: -kv[1]):
            print(f"  {bucket}: {v} x {k}")
    print(f"slots busy after the run: {len(busy)} of {len(slots)}; three probes answered in {probe:.2f}s")
    fmt = lambda d: ", ".join(f"{k} {v:.0f}" for k, v in d.items())  # noqa: E731
    print(f"front-end RSS {front0:.0f} -> {front1:.0f} MB; model processes (MB) after warm-up: {fmt(w0)}; "
          f"at the end: {fmt(w1)}")
    ok = not stats["failed"] and not busy and front1 - front0 <= FRONT_END_GROWTH_MB
    ok = ok and all(w1[k] <= WORKER_GROWTH * w0.get(k, w1[k]) for k in w1)
    print("PASS" if ok else "FAIL", "log:", WORK / "server.log")
    return 0 if ok else 1


if __name__ == "__main__":
    d = WORK / "models"
    d.mkdir(parents=True, exist_ok=True)
    for name in ("spm-scripted", "bpe-chatml"):
        MODELS[name].write(d)
    (d / "config.yaml").write_text(CONFIG)
    env = {"LOCALAI_SINGLE_ACTIVE_BACKEND": "true", "LOCALAI_PARALLEL_REQUESTS": "true"}
    random.seed(7)
    with server_process(d / "config.yaml", d, WORK / "server.log", env) as (base, proc):
        sys.exit(asyncio.run(main(base, proc.pid)))
