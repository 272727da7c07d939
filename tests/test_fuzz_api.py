"""Property test of the HTTP API (hypothesis): whatever a client sends, the answer is a 2xx or a clean 4xx, in
time, and the model keeps its process and still answers."""
from __future__ import annotations

import json
import shutil

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving import running_server

CONFIG = """
- name: t
  context_size: 512
  threads: 1
  parameters: {model: t.gguf, temperature: 0}
"""

# Values of every JSON kind, valid and not, with the edges the schema bounds.
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(-5, 70), st.sampled_from([2**31, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from([-1.0, 0.0, 1.0, 2.5, 1e308]),
    st.text(max_size=12), st.sampled_from(["", "auto", "none", "required", "json_object", "\u00e9\u4e2d\U0001f999"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
FIELDS = ["temperature", "top_p", "top_k", "min_p", "typical_p", "repeat_penalty", "frequency_penalty",
          "presence_penalty", "seed", "stop", "logit_bias", "ignore_eos", "max_tokens", "grammar",
          "response_format", "mirostat", "n", "stream", "stream_options", "logprobs", "top_logprobs", "echo",
          "tools", "tool_choice", "n_keep", "reasoning_effort", "prompt", "messages", "input", "content",
          "tokens", "instructions", "max_output_tokens", "model"]
MESSAGES = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]),
                                           "content": st.one_of(st.text(max_size=20), st.text(max_size=20), VALUES)}),
                    min_size=0, max_size=3)
# Values a real client sends, so that many requests get past validation into the model.
PLAUSIBLE = {
    "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "top_k": st.integers(0, 50),
    "min_p": st.floats(0, 1), "seed": st.integers(0, 2**32), "max_tokens": st.integers(-1, 16),
    "stop": st.lists(st.text(min_size=1, max_size=4), max_size=3), "ignore_eos": st.booleans(),
    "n": st.integers(1, 3), "stream": st.booleans(), "echo": st.booleans(),
    "grammar": st.sampled_from(['root ::= "a"', 'root ::= [a-z]+', 'root ::= "yes" | "no"', "root ::= x"]),
    "response_format": st.sampled_from([{"type": "json_object"}, {"type": "text"}, {"type": "json_schema",
                                        "json_schema": {"schema": {"type": "boolean"}}}]),
    "logprobs": st.one_of(st.booleans(), st.integers(0, 5)), "top_logprobs": st.integers(0, 5),
    "tool_choice": st.sampled_from(["auto", "none", "required"]),
    "tools": st.just([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
}
ENDPOINTS = ["/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/tokenize", "/v1/detokenize",
             "/v1/embeddings"]


@st.composite
def bodies(draw) -> tuple[str, dict]:
    path = draw(st.sampled_from(ENDPOINTS))
    body: dict = {"model": "t"}
    if path == "/v1/chat/completions":
        body["messages"] = draw(MESSAGES)
    elif path in ("/v1/completions",):
        body["prompt"] = draw(st.one_of(st.text(max_size=30), st.text(max_size=30), VALUES))
    elif path == "/v1/responses":
        body["input"] = draw(st.one_of(st.text(max_size=30), VALUES))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        plausible = PLAUSIBLE.get(field)
        body[field] = draw(plausible if plausible is not None and draw(st.integers(0, 3)) else VALUES)
    if isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 64:
        body["max_tokens"] = 64  # keeps the run short; the bounds are tested on their own
    return path, body


@pytest.fixture(scope="module")
def server(tmp_path_factory, gguf_path):
    models = tmp_path_factory.mktemp("fuzzmodels")
    shutil.copy(gguf_path("spm-scripted"), models / "t.gguf")
    (models / "config.yaml").write_text(CONFIG)
    with running_server(models / "config.yaml", models, models / "server.log") as base:
        yield base, models / "server.log"


def _answers(base: str) -> None:
    r = httpx.post(base + "/v1/completions", json={"model": "t", "prompt": "one"}, timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == " two three four five", r.text


def _pid(base: str) -> int:
    return httpx.get(base + "/backend/monitor", params={"model": "t"}, timeout=30).json()["pid"]


def test_no_request_gets_a_5xx_or_hangs_and_the_model_survives(server):
    base, log = server
    _answers(base)
    pid = _pid(base)
    seen: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(bodies())
    def one(case: tuple[str, dict]) -> None:
        path, body = case
        raw = json.dumps(body, allow_nan=False).encode()
        # Every request must end in time: a hang is a failure, not a slow test.
        r = httpx.post(base + path, content=raw, headers={"Content-Type": "application/json"}, timeout=30)
        seen.append(r.status_code)
        assert r.status_code < 500, (path, body, r.text, log.read_text()[-2000:])
        if r.status_code >= 400:
            error = r.json()["error"]
            assert error["code"] == r.status_code and error["message"]

    one()
    # Both kinds were exercised: answers the model produced, and refusals.
    assert seen.count(200) >= 15 and any(400 <= s < 500 for s in seen), seen
    assert _pid(base) == pid
    _answers(base)
