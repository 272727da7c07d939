"""End to end: `llamaslots run` as a user starts it, the official openai client, real tiny GGUFs."""
from __future__ import annotations

import concurrent.futures
import shutil
import time

import httpx
import openai
import pytest

from tests.serving import running_server

CONFIG = """
# A LocalAI-style config list, as users keep it.
- name: chatml
  context_size: 1024
  threads: 2
  parameters:
    model: bpe-chatml.gguf
    temperature: 0
  template:
    use_tokenizer_template: true

- name: scripted
  context_size: 512
  threads: 2
  options: ["parallel:8"]
  parameters:
    model: spm-scripted.gguf
    temperature: 0
  template:
    completion: "{{.Input}}"
    # A vicuna-style Go template; its last line ends with a newline, which the
    # scripted model answers with "Hello world!".
    chat: |
      A chat between a human and an assistant.
      {{.Input}}
      ### Assistant:
  roles:
    user: "### Human: "
  stopwords: ["### Human:"]

- name: embedder
  embeddings: true
  context_size: 256
  threads: 2
  parameters:
    model: spm-random.gguf
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, gguf_path):
    models = tmp_path_factory.mktemp("models")
    for name in ("bpe-chatml", "spm-scripted", "spm-random"):
        shutil.copy(gguf_path(name), models / f"{name}.gguf")
    # A GGUF no config mentions: LocalAI serves it by file name with default settings.
    shutil.copy(gguf_path("spm-scripted"), models / "loose.gguf")
    (models / "config.yaml").write_text(CONFIG)
    log_path = tmp_path_factory.mktemp("logs") / "server.log"
    with running_server(models / "config.yaml", models, log_path, {"LOCALAI_LOG_LEVEL": "debug"}) as base:
        yield base, log_path


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="None", max_retries=0, timeout=60)


def test_model_list(client):
    assert sorted(m.id for m in client.models.list()) == ["chatml", "embedder", "loose.gguf", "scripted"]


def test_a_bare_model_file_is_servable_by_name(client):
    r = client.completions.create(model="loose.gguf", prompt="one", temperature=0)
    assert r.choices[0].text == " two three four five"


def test_chat_with_the_ggufs_own_template(client):
    r = client.chat.completions.create(model="chatml", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello world!"
    assert r.choices[0].finish_reason == "stop"
    # "Hello", " world", "!" then <|im_end|>, which ends the answer without being counted or shown.
    assert r.usage.completion_tokens == 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + 3


def test_chat_stream_with_usage(client):
    chunks = list(client.chat.completions.create(
        model="chatml", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world!"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_chat_through_a_localai_go_template(client):
    r = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "Name one city"}])
    assert r.choices[0].message.content == "Hello world!"


def test_completion_rules_over_http(client):
    assert client.completions.create(model="scripted", prompt="one").choices[0].text == " two three four five"
    stopped = client.completions.create(model="scripted", prompt="one", stop=["four"])
    assert (stopped.choices[0].text, stopped.choices[0].finish_reason) == (" two three ", "stop")
    hidden = client.completions.create(model="scripted", prompt="special")
    assert hidden.choices[0].text == " after"
    length = client.completions.create(model="scripted", prompt="The", max_tokens=5)
    assert (length.choices[0].finish_reason, length.usage.completion_tokens) == ("length", 5)
    utf8 = client.completions.create(model="scripted", prompt="unicode")
    assert utf8.choices[0].text == " café 中文🦙"


def test_n_choices_come_from_separate_slots(client):
    r = client.completions.create(model="scripted", prompt="one", n=3)
    assert [(c.index, c.text, c.finish_reason) for c in r.choices] == [
        (i, " two three four five", "stop") for i in range(3)]
    single = client.completions.create(model="scripted", prompt="one")
    assert r.usage.prompt_tokens == single.usage.prompt_tokens
    assert r.usage.completion_tokens == 3 * single.usage.completion_tokens
    several = client.completions.create(model="scripted", prompt=["one", "Hello"], n=2)
    assert [c.text for c in several.choices] == [" two three four five"] * 2 + [" world!"] * 2
    chunks = list(client.chat.completions.create(
        model="chatml", messages=[{"role": "user", "content": "hi"}], n=2, stream=True,
        stream_options={"include_usage": True}))
    texts, finishes = ["", ""], [None, None]
    for c in chunks[:-1]:
        (choice,) = c.choices
        texts[choice.index] += choice.delta.content or ""
        finishes[choice.index] = choice.finish_reason or finishes[choice.index]
    assert texts == ["Hello world!"] * 2 and finishes == ["stop"] * 2
    assert chunks[-1].usage.completion_tokens == 6


def test_config_stopword_split_across_tokens_never_streams(client):
    chunks = list(client.completions.create(model="scripted", prompt="ask", stream=True))
    pieces = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(pieces) == " Sure thing"
    assert not any("#" in p for p in pieces)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_concurrent_streams_are_exact_and_uncut(client):
    prompts = ["one", "Hello", "special", "unicode", "yes", "one", "Hello", "unicode"] * 2
    expected = {"one": " two three four five", "Hello": " world!", "special": " after",
                "unicode": " café 中文🦙", "yes": "<tool_call> no"}

    def run(p):
        chunks = list(client.completions.create(model="scripted", prompt=p, stream=True))
        return p, "".join(c.choices[0].text for c in chunks if c.choices), chunks[-1].choices[0].finish_reason

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for p, text, finish in pool.map(run, prompts):
            assert (text, finish) == (expected[p], "stop"), p


def test_embeddings(client):
    r = client.embeddings.create(model="embedder", input=["the quick brown fox", "hello"])
    assert len(r.data) == 2
    v = r.data[0].embedding
    assert len(v) == 64 and abs(sum(x * x for x in v) - 1) < 1e-3


def test_client_errors_have_localai_shape(client, server):
    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "GET /v1/models" in str(nf.value)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model="scripted", prompt="one " * 600)
    assert "exceeds the available context size (512 tokens)" in str(too_long.value)
    with pytest.raises(openai.BadRequestError, match="embeddings"):
        client.embeddings.create(model="scripted", input="x")
    r = httpx.post(server[0] + "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and set(r.json()["error"]) == {"code", "message", "type"}


def test_misspelled_field_is_logged_with_a_suggestion(server):
    httpx.post(server[0] + "/chat/completions", json={
        "model": "chatml", "templature": 0.1, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    deadline = time.monotonic() + 10  # the log line is written during the request; allow for a slow disk
    while 'did you mean "temperature"' not in server[1].read_text():
        assert time.monotonic() < deadline, server[1].read_text()[-2000:]
        time.sleep(0.05)


def test_response_format_json_object(client):
    import json

    r = client.chat.completions.create(model="embedder", messages=[{"role": "user", "content": "hello"}],
                                       response_format={"type": "json_object"}, temperature=0, max_tokens=200)
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_response_format_json_schema(client):
    import json

    schema = {"type": "object", "required": ["city", "rank", "open"], "properties": {
        "city": {"enum": ["Kyoto", "Osaka"]}, "rank": {"type": "integer"}, "open": {"type": "boolean"},
        "note": {"type": ["null", "string"], "maxLength": 10}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}}
    r = client.chat.completions.create(model="embedder", messages=[{"role": "user", "content": "hello"}],
                                       response_format=fmt, temperature=0, max_tokens=300)
    assert r.choices[0].finish_reason == "stop"
    value = json.loads(r.choices[0].message.content)
    assert value["city"] in ("Kyoto", "Osaka") and type(value["rank"]) is int and type(value["open"]) is bool
    assert set(value) <= {"city", "rank", "open", "note"}
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"a": {"type": "bool"}}}}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="embedder", messages=[{"role": "user", "content": "x"}], response_format=bad)
    assert "#/properties/a: unknown type 'bool'" in err.value.message


def test_tokenize_and_probes(server):
    base = server[0]
    r = httpx.post(base + "/v1/tokenize", json={"model": "scripted", "content": "one two"})
    assert r.status_code == 200
    tokens = r.json()["tokens"]
    assert len(tokens) >= 2 and all(isinstance(t, int) for t in tokens)
    assert httpx.get(base + "/healthz").status_code == 200
    assert httpx.get(base + "/readyz").status_code == 200
