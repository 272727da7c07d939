"""Dev-only soak: many concurrent clients on three models with swaps, n > 1, json_object and
random disconnects, against `llamaslots run` on generated GGUFs; checks every scripted answer.

Not run in CI. Usage: .venv/bin/python tools/soak.py [SECONDS=60] [MAX_ACTIVE_BACKENDS=2] [WORKDIR]
Prints the counts of answers, disconnects and errors (by kind); exits 1 on any error or if a
model does not answer promptly afterwards (a leaked slot or held model would show there).
The server log is WORKDIR/server.log: look for ERROR and WARNING lines.
"""
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import httpx
from tests.gguf_models import MODELS
from tests.serving import running_server

WORK = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="llamaslots-soak-"))
d = WORK / "models"
d.mkdir(parents=True, exist_ok=True)
for n in ("spm-scripted", "spm-random", "bpe-chatml"):
    MODELS[n].write(d)
(d / "config.yaml").write_text("""
- name: scripted
  context_size: 1024
  threads: 1
  options: ["parallel:4"]
  parameters: {model: spm-scripted.gguf, temperature: 0}
  template: {completion: "{{.Input}}", chat: "{{.Input}}\\n"}
  roles: {user: "### Human: "}
  stopwords: ["### Human:"]
- name: random
  context_size: 2048
  threads: 1
  options: ["parallel:3"]
  parameters: {model: spm-random.gguf}
- name: chatml
  context_size: 512
  threads: 1
  parameters: {model: bpe-chatml.gguf, temperature: 0}
  template: {use_tokenizer_template: true}
""")
EXPECT = {"one": " two three four five", "Hello": " world!", "special": " after", "unicode": " café 中文🦙"}
stats = {"ok": 0, "err": {}, "disc": 0}

async def one(c: httpx.AsyncClient, base: str):
    kind = random.random()
    model = random.choice(["scripted", "scripted", "random", "chatml"])
    stream = random.random() < 0.6
    n = random.choice([1, 1, 1, 2, 3])
    if model == "scripted":
        p = random.choice(list(EXPECT))
        body = {"model": model, "prompt": p, "stream": stream, "n": n}
        url = "/v1/completions"
    elif model == "chatml":
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "n": n}
        url = "/v1/chat/completions"
    else:
        body = {"model": model, "prompt": "the quick " * random.randint(1, 60), "stream": stream, "n": n,
                "max_tokens": random.randint(1, 80), "temperature": random.choice([0, 0.8]), "seed": 3}
        if random.random() < 0.2:
            body["response_format"] = {"type": "json_object"}
        url = "/v1/completions"
    disconnect = random.random() < 0.2
    try:
        if stream:
            async with c.stream("POST", base + url, json=body, timeout=120) as r:
                texts = {}
                async for line in r.aiter_lines():
                    if disconnect and random.random() < 0.3:
                        stats["disc"] += 1
                        return
                    if line.startswith("data: ") and line != "data: [DONE]":
                        ev = json.loads(line[6:])
                        if "error" in ev:
                            raise RuntimeError(ev["error"]["message"])
                        for ch in ev["choices"]:
                            texts[ch["index"]] = texts.get(ch["index"], "") + (ch.get("text") or ch.get("delta", {}).get("content") or "")
                if model == "scripted":
                    assert all(t == EXPECT[p] for t in texts.values()) and len(texts) == n, (p, texts)
                if model == "chatml":
                    assert all(t == "Hello world!" for t in texts.values()) and len(texts) == n, texts
        else:
            if disconnect:
                try:
                    await c.post(base + url, json=body, timeout=0.05)
                except httpx.TimeoutException:
                    stats["disc"] += 1
                    return
            r = await c.post(base + url, json=body, timeout=120)
            assert r.status_code == 200, r.text
            js = r.json()
            assert len(js["choices"]) == n
            if model == "scripted":
                assert all(ch["text"] == EXPECT[p] for ch in js["choices"]), js
        stats["ok"] += 1
    except Exception as e:
        k = type(e).__name__ + ": " + str(e)[:120]
        stats["err"][k] = stats["err"].get(k, 0) + 1

async def main(base, seconds):
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as c:
        end = time.monotonic() + seconds
        async def worker():
            while time.monotonic() < end:
                await one(c, base)
        await asyncio.gather(*[worker() for _ in range(24)])
        # After the storm: every model answers promptly (no leaked slot or held handle).
        t = time.monotonic()
        for m in ("scripted", "random", "chatml", "scripted"):
            body = {"model": m, "prompt": "one", "max_tokens": 4}
            r = await c.post(base + "/v1/completions", json=body, timeout=30)
            assert r.status_code == 200, r.text
        print("final probes in %.2fs" % (time.monotonic() - t))

env = {"LOCALAI_MAX_ACTIVE_BACKENDS": sys.argv[2] if len(sys.argv) > 2 else "2"}
with running_server(d / "config.yaml", d, WORK / "server.log", env) as base:
    asyncio.run(main(base, float(sys.argv[1]) if len(sys.argv) > 1 else 60.0))
print(stats, "log:", WORK / "server.log")
sys.exit(1 if stats["err"] else 0)
