"""Completions, embeddings, models, tokenize, probes, API keys."""
from __future__ import annotations

import base64
import struct

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.api.conftest import sse_events
from tests.api.fakes import model_config, FakeHandle, FakeManager, script_text

pytestmark = pytest.mark.anyio


async def test_completion_non_stream(client, handle):
    handle.script = script_text(" world", "!", prompt_tokens=3)
    r = await client.post("/v1/completions", json={"model": "vicuna-13b", "prompt": "Hello", "max_tokens": 9})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    assert body["model"] == "vicuna-13b"
    assert body["choices"] == [{"index": 0, "text": " world!", "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"]["total_tokens"] == 5
    (req,) = handle.requests
    assert req.prompt == "Hello" and req.params.max_tokens == 9


async def test_completion_stream(client, handle):
    handle.script = script_text("a", "b", reason="length")
    r = await client.post(
        "/completions",
        json={"prompt": ["Hello"], "stream": True, "stream_options": {"include_usage": True}},
    )
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    texts = [e["choices"][0]["text"] for e in events[:-2]]
    assert texts == ["a", "b", ""]
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert all(e["object"] == "text_completion" for e in events[:-1])
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_a_list_of_prompts_gives_n_choices_per_prompt_in_order(client, handle, stream):
    r = await client.post("/v1/completions", json={
        "prompt": ["first", "second"], "n": 2, "seed": 1, "echo": True, "stream": stream,
        "stream_options": {"include_usage": True}})
    assert r.status_code == 200, r.text
    assert [(q.prompt, q.params.sampling.seed) for q in handle.requests] == [
        ("first", 1), ("first", 2), ("second", 1), ("second", 2)]
    if stream:
        events = sse_events(r.text)
        texts: dict[int, str] = {}
        for e in events[:-2]:
            (choice,) = e["choices"]
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
        usage = events[-2]["usage"]
    else:
        body = r.json()
        texts = {c["index"]: c["text"] for c in body["choices"]}
        usage = body["usage"]
    # echo puts each choice's own prompt first.
    assert [texts[i][:6] for i in range(4)] == ["firstH", "firstH", "second", "second"]
    # FakeHandle answers "Hello world" (2 tokens) with 7 prompt tokens: each prompt counts once.
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (14, 8)


async def test_empty_or_oversized_prompt_lists_are_refused(client, handle):
    r = await client.post("/v1/completions", json={"prompt": []})
    assert r.status_code == 400 and "the list of prompts is empty" in r.json()["error"]["message"]
    r = await client.post("/v1/completions", json={"prompt": ["a"] * 33, "n": 2})
    assert r.status_code == 400 and "66 generations; at most 64" in r.json()["error"]["message"]
    r = await client.post("/v1/completions", json={"model": "vicuna-13b"})
    assert r.status_code == 400 and "prompt: field required" in r.json()["error"]["message"]
    assert handle.requests == []


async def test_embeddings(client, manager):
    handle = FakeHandle(model_config("embedder", embeddings=True))
    handle.vectors = {"a": [0.25, -1.0], "bb": [1.5, 2.0]}
    manager.handles["embedder"] = handle
    r = await client.post("/v1/embeddings", json={"model": "embedder", "input": ["a", "bb"]})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.25, -1.0]},
            {"object": "embedding", "index": 1, "embedding": [1.5, 2.0]},
        ],
        "model": "embedder",
        # fake tokenizer: one token per character + BOS
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    r = await client.post("/embeddings", json={"model": "embedder", "input": "a", "encoding_format": "base64"})
    (item,) = r.json()["data"]
    assert struct.unpack("<2f", base64.b64decode(item["embedding"])) == (0.25, -1.0)


async def test_embeddings_disabled_is_400(client):
    r = await client.post("/v1/embeddings", json={"model": "vicuna-13b", "input": "hi"})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": 400,
        "message": 'model "vicuna-13b" does not serve embeddings; set "embeddings: true" in its config',
        "type": "invalid_request_error",
    }


async def test_embeddings_bad_input(client, manager):
    manager.handles["embedder"] = FakeHandle(model_config("embedder", embeddings=True))
    r = await client.post("/v1/embeddings", json={"model": "embedder", "input": []})
    assert r.status_code == 400 and "input: the list is empty" in r.json()["error"]["message"]
    r = await client.post("/v1/embeddings", json={"model": "embedder", "input": [1, 2]})
    assert r.status_code == 400 and "input" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/models", "/models"])
async def test_models(client, path):
    r = await client.get(path)
    assert r.json() == {
        "object": "list",
        "data": [
            {"id": "vicuna-13b", "object": "model", "owned_by": "llamaslots"},
            {"id": "karakuri-70b", "object": "model", "owned_by": "llamaslots"},
        ],
    }


async def test_retrieve_model(client):
    r = await client.get("/v1/models/karakuri-70b")
    assert r.json() == {"id": "karakuri-70b", "object": "model", "owned_by": "llamaslots"}
    r = await client.get("/v1/models/nope")
    assert r.status_code == 404


@pytest.mark.parametrize("path", ["/v1/tokenize", "/tokenize"])
async def test_tokenize(client, handle, path):
    r = await client.post(path, json={"model": "vicuna-13b", "content": "AB"})
    assert r.json() == {"tokens": [65, 66]}
    assert handle.tokenized == [("AB", False, True)]


async def test_tokenize_requires_content(client):
    r = await client.post("/v1/tokenize", json={"model": "vicuna-13b"})
    assert r.status_code == 400 and "content: field required" in r.json()["error"]["message"]


def test_lifespan_and_probes():
    manager = FakeManager([FakeHandle(model_config("m"))])
    app = create_app(manager, None)
    client = TestClient(app)
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "starting", "loading": {}}
    with client:
        assert manager.started == 1 and manager.closed == 0
        assert client.get("/readyz").json() == {"status": "ready", "loading": {}}
        assert client.get("/healthz").status_code == 200
        manager.ready = False  # e.g. still preloading models in the background
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
    assert manager.closed == 1


class Settings:
    api_keys = ["s3cret", "other"]


async def test_api_keys():
    manager = FakeManager([FakeHandle(model_config("m"))])
    app = create_app(manager, Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/v1/models")
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        assert (await c.get("/v1/models", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await c.get("/v1/models", headers={"Authorization": "Bearer s3cret"})).status_code == 200
        assert (await c.get("/v1/models", headers={"x-api-key": "other"})).status_code == 200
        assert (await c.get("/healthz")).status_code == 200


async def test_no_api_keys_means_any_header_is_fine(client):
    # The field note sends "Authorization: Bearer None" to a server without keys.
    r = await client.get("/v1/models", headers={"Authorization": "Bearer None"})
    assert r.status_code == 200


async def test_completion_echo(client, handle):
    handle.script = script_text(" there")
    r = await client.post("/v1/completions", json={"prompt": "Hi", "echo": True})
    assert r.json()["choices"][0]["text"] == "Hi there"
    r = await client.post("/v1/completions", json={"prompt": "Hi", "echo": True, "stream": True})
    texts = [e["choices"][0]["text"] for e in sse_events(r.text)[:-1]]
    assert "".join(texts) == "Hi there"
    r = await client.post("/v1/completions", json={"prompt": "Hi"})
    assert r.json()["choices"][0]["text"] == " there"


def test_readyz_names_the_models_still_loading():
    manager = FakeManager([FakeHandle(model_config("m"))])
    app = create_app(manager, None)
    with TestClient(app) as client:
        manager.ready = False  # preloading
        manager.loading = {"m": 0.4}
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "starting", "loading": {"m": 0.4}}
        manager.ready = True  # an on-demand load does not hold readiness back
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready", "loading": {"m": 0.4}}


def test_the_status_pages_cookie_carries_any_key_percent_encoded():
    from urllib.parse import quote

    class KeySettings:
        api_keys = ["a+b/c=d e"]

    manager = FakeManager([FakeHandle(model_config("m"))])
    with TestClient(create_app(manager, KeySettings())) as client:
        client.cookies.set("token", quote("a+b/c=d e", safe=""))
        assert client.get("/v1/models").status_code == 200
        client.cookies.set("token", quote("a+b/c=d", safe=""))
        assert client.get("/v1/models").status_code == 401
        client.cookies.clear()
        r = client.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 401 and "encodeURIComponent" in r.text


async def test_disable_webui_takes_the_status_page_and_its_key_prompt_away():
    class NoWebui:
        disable_webui = True
        api_keys: list[str] = []

    class NoWebuiWithKey:
        disable_webui = True
        api_keys = ["k"]

    manager = FakeManager([FakeHandle(model_config("m"))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(manager, None)),
                                 base_url="http://t") as c:
        r = await c.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 200 and "<html" in r.text.lower()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(manager, NoWebui())),
                                 base_url="http://t") as c:
        r = await c.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 404 and r.json()["error"]["code"] == 404
        assert (await c.get("/v1/models")).status_code == 200
        assert (await c.get("/healthz")).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(manager, NoWebuiWithKey())),
                                 base_url="http://t") as c:
        r = await c.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"  # no login page
