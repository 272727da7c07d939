"""A hostile client against a running server: every mistake a clean 4xx, and no request wedges or kills a model."""
from __future__ import annotations

import json
import os
import shutil
import time

import httpx
import pytest

from tests.serving import running_server

CONFIG = """
- name: t
  context_size: 512
  threads: 1
  parameters: {model: t.gguf, temperature: 0}
- name: o
  context_size: 512
  threads: 1
  parameters: {model: other.gguf, temperature: 0}
- name: broken
  parameters: {model: broken.gguf}
- name: emb
  embeddings: true
  context_size: 256
  threads: 1
  parameters: {model: other.gguf}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, gguf_path):
    models = tmp_path_factory.mktemp("hardmodels")
    shutil.copy(gguf_path("spm-scripted"), models / "t.gguf")
    shutil.copy(gguf_path("spm-scripted"), models / "other.gguf")
    shutil.copy(gguf_path("spm-scripted"), models / "loose.gguf")
    (models / "broken.gguf").write_bytes(b"GGUF\x00\x00\x00\x00broken")
    (models / "notes.bin").write_bytes(b"secret-bytes " * 10)
    (models / "config.yaml").write_text(CONFIG)
    log = models / "server.log"
    env = {"LOCALAI_SINGLE_ACTIVE_BACKEND": "true", "LOCALAI_UPLOAD_LIMIT": "1"}
    with running_server(models / "config.yaml", models, log, env) as base:
        yield base, log


def post(base: str, path: str, body: object = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    if raw is None:
        raw = json.dumps(body).encode()
    return httpx.post(base + path, content=raw, headers={"Content-Type": "application/json", **(headers or {})},
                      timeout=60)


def answers(base: str, model: str = "t") -> None:
    r = post(base, "/v1/completions", {"model": model, "prompt": "one"})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == " two three four five"


def pid_of(base: str, model: str) -> int:
    return httpx.get(base + "/backend/monitor", params={"model": model}, timeout=30).json()["pid"]


def refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    assert r.json()["error"]["code"] == status
    for word in words:
        assert word in message, message


SURROGATE_BODIES = [
    ("/v1/chat/completions", rb'{"model":"t","messages":[{"role":"user","content":"\ud800"}]}', "messages[0].content"),
    ("/v1/chat/completions", rb'{"model":"t","messages":[{"role":"\udfff","content":"hi"}]}', "messages[0].role"),
    ("/v1/completions", rb'{"model":"t","prompt":"a\ud800b"}', "prompt"),
    ("/v1/completions", rb'{"model":"t","prompt":"x","grammar":"root ::= \"\ud800\""}', "grammar"),
    ("/v1/completions", rb'{"model":"\ud800","prompt":"x"}', "model"),
    ("/v1/tokenize", rb'{"model":"t","content":"\ud800"}', "content"),
    ("/v1/embeddings", rb'{"model":"emb","input":["ok","\ud800"]}', "input[1]"),
    ("/v1/completions", rb'{"model":"t","prompt":"x","\ud800":1}', "\\ud800: the text"),  # a key, escaped
]


@pytest.mark.parametrize("path,raw,field", SURROGATE_BODIES)
def test_a_lone_surrogate_anywhere_is_a_400_naming_the_field_and_the_model_still_answers(server, path, raw, field):
    base, _ = server
    refused(post(base, path, raw=raw), 400, "lone surrogate", field)
    answers(base)


def test_every_spelling_of_a_file_name_is_one_model_and_one_process(server):
    base, log = server
    answers(base, "t")
    pid = pid_of(base, "t")
    before = log.read_text().count("manager: loading model")
    # A config's own file is that config; other spellings of it too.
    for name in ("t.gguf", "./t.gguf", ".//t.gguf", "././t.gguf"):
        r = post(base, "/v1/completions", {"model": name, "prompt": "one"})
        assert r.status_code == 200, r.text
    assert pid_of(base, "t") == pid
    # A loose file, spelled three ways: one model named by its canonical name.
    for name in ("loose.gguf", "./loose.gguf", ".//loose.gguf"):
        answers(base, name)
    loaded = httpx.get(base + "/system").json()["loaded_models"]
    assert loaded == [{"id": "loose.gguf"}]
    assert log.read_text().count("manager: loading model") == before + 1
    # What is not a GGUF is not a model, and its bytes are never shown.
    for name in ("config.yaml", "notes.bin", "../x", "sub/../t.gguf", "x" * 300, "a\u0000b"):
        r = post(base, "/v1/completions", {"model": name, "prompt": "x"})
        assert r.status_code in (400, 404), r.text
        assert "secret-bytes" not in r.text


def test_grammar_complete_with_ignore_eos_ends_the_answer_instead_of_aborting_the_model(server):
    base, _ = server
    answers(base)
    pid = pid_of(base, "t")
    r = post(base, "/v1/completions", {"model": "t", "prompt": "one", "ignore_eos": True,
                                       "grammar": 'root ::= "a"', "max_tokens": 8})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == "a"
    r = post(base, "/v1/chat/completions", {"model": "t", "messages": [{"role": "user", "content": "one"}],
                                            "ignore_eos": True, "max_tokens": 16, "response_format": {
                                                "type": "json_schema", "json_schema": {"schema": {"type": "boolean"}}}})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] in ("true", "false")
    refused(post(base, "/v1/chat/completions", {"model": "t", "messages": [{"role": "user", "content": "one"}],
                                                "typical_p": -1, "response_format": {"type": "json_object"}}),
            400, "typical_p")
    assert pid_of(base, "t") == pid
    answers(base)


def test_bodies_over_the_upload_limit_are_413_before_they_are_read(server):
    base, _ = server
    big = {"model": "t", "prompt": "x" * (1 << 20)}
    refused(post(base, "/v1/completions", big), 413, "upload limit of 1 MB")

    def chunks():  # no Content-Length: refused while reading
        yield b'{"model":"t","prompt":"'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    r = httpx.post(base + "/v1/completions", content=chunks(), headers={"Content-Type": "application/json"},
                   timeout=60)
    refused(r, 413, "upload limit")
    answers(base)


def test_a_prompt_bigger_than_the_pipe_buffer_reaches_the_model_intact(server):
    # uvloop made the worker pipe non-blocking: a message over the socket buffer broke off
    # half-written and the model answered nothing ever again.
    base, _ = server
    r = post(base, "/v1/completions", {"model": "t", "prompt": "one " * 200_000, "max_tokens": 2})
    refused(r, 400, "exceeds the available context size")
    answers(base)


MALFORMED = [
    (b'{"model":"t","prompt":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests deeper"),
    (b'{"model":"t","prompt":"x","max_tokens":' + b"9" * 5000 + b"}", "4300 digits"),
    (b'{"model":"t","prompt":"x","temperature":NaN}', "NaN"),
    (b'{"model":"t","prompt":"x","temperature":Infinity}', "Infinity"),
    (b'{"model":"t","prompt":"x","max_tokens":"10"}', "max_tokens"),
    (b'{"model":"t","prompt":"x","max_tokens":-5}', "max_tokens"),
    (b'{"model":"t","prompt":"x","stream":"yes"}', "stream"),
    (b'{"model":"t","prompt":"x","top_p":1.5}', "top_p"),
    (b'{"model":"t","prompt":"x","stop":' + json.dumps(["ab" * 100] * 100).encode() + b"}", "stop"),
    (b'{"model":"t","prompt":"x","stop":["' + b"s" * 600 + b'"]}', "stop"),
    (b'{"model":"t","prompt":"x","logit_bias":{"5":1000}}', "logit_bias"),
]


@pytest.mark.parametrize("raw,word", MALFORMED, ids=[w for _, w in MALFORMED])
def test_malformed_values_are_400s_that_name_the_problem(server, raw, word):
    base, _ = server
    refused(post(base, "/v1/completions", raw=raw), 400, word)


def test_a_schema_nested_too_deep_is_a_400(server):
    base, _ = server
    schema: dict = {"type": "string"}
    for _ in range(450):
        schema = {"type": "array", "items": schema}
    r = post(base, "/v1/chat/completions", {"model": "t", "messages": [{"role": "user", "content": "x"}],
                                            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}})
    refused(r, 400, "nests deeper")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "a": schema}}}}
    refused(post(base, "/v1/chat/completions", {"model": "t", "messages": [{"role": "user", "content": "x"}],
                                                "tools": [tool]}), 400, "nests deeper")


def test_max_tokens_minus_one_keeps_llama_cpp_meaning(server):
    base, _ = server
    r = post(base, "/v1/completions", {"model": "t", "prompt": "one", "max_tokens": -1})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == " two three four five", r.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/plain;charset=UTF-8"])
def test_bodies_a_web_page_could_send_cross_origin_are_415(server, content_type):
    base, _ = server
    body = json.dumps({"model": "t", "prompt": "one"}).encode()
    r = httpx.post(base + "/v1/completions", content=body, headers={"Content-Type": content_type})
    refused(r, 415, "application/json")


def test_a_broken_model_file_does_not_evict_the_working_model(server):
    base, _ = server
    answers(base, "t")
    pid = pid_of(base, "t")
    r = post(base, "/v1/completions", {"model": "broken", "prompt": "x"})
    refused(r, 500, "broken.gguf", "version 0")
    assert {"id": "t"} in httpx.get(base + "/system").json()["loaded_models"]
    assert pid_of(base, "t") == pid


def test_a_dead_worker_is_noticed_and_started_again_without_a_request(server):
    base, log = server
    answers(base, "o")
    pid = pid_of(base, "o")
    # A process that dies right after loading is not restarted in a loop (the next request
    # loads it); one that ran a while is brought back at once.
    time.sleep(10.5)
    os.kill(pid, 9)
    deadline = time.monotonic() + 30
    new = None
    while time.monotonic() < deadline:
        mon = httpx.get(base + "/backend/monitor", params={"model": "o"}, timeout=30).json()
        if mon.get("pid") not in (None, pid) and mon["state"] in ("READY", "BUSY"):
            new = mon["pid"]
            break
        time.sleep(0.1)
    assert new is not None, log.read_text()[-3000:]
    assert "not running any more (SIGKILL); starting it again" in log.read_text()
    answers(base, "o")


def test_a_client_that_leaves_mid_body_is_not_an_error(server):
    import socket

    base, log = server
    host, port = base.removeprefix("http://").split(":")
    before = log.read_text().count("ERROR")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n{\"model\":")
    time.sleep(0.3)
    s.close()
    time.sleep(0.5)
    assert log.read_text().count("ERROR") == before, log.read_text()[-2000:]
    answers(base)
