"""The official openai client against the app served by uvicorn on 127.0.0.1 (a real socket)."""
from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import httpx
import openai
import pytest
import uvicorn

from server.app import create_app
from server.engine.types import Failed, TextDelta
from server.errors import EngineFailed
from tests.api.fakes import model_config, FakeHandle, FakeManager, Hang, script_text

MESSAGES = [
    {"role": "system", "content": "You are an excellent tourist guide."},
    {"role": "user", "content": "Name one Japanese prefecture."},
]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, FakeManager]]:
    chat = FakeHandle(model_config("vicuna-13b"))
    embedder = FakeHandle(model_config("embedder", embeddings=True))
    embedder.vectors = {"hello": [0.5, -0.25, 2.0]}
    manager = FakeManager([chat, embedder])
    app = create_app(manager, None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", manager
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert manager.started == 1 and manager.closed == 1


@pytest.fixture
def client(served) -> openai.OpenAI:
    base, _ = served
    return openai.OpenAI(base_url=base + "/v1", api_key="None", max_retries=0, timeout=10)


@pytest.fixture
def chat_handle(served) -> FakeHandle:
    handle = served[1].handles["vicuna-13b"]
    handle.script = script_text("Kyoto", ": temples", ", food", prompt_tokens=21)
    return handle


def test_chat_non_stream(client, chat_handle):
    r = client.chat.completions.create(model="vicuna-13b", messages=MESSAGES, temperature=0.1)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "Kyoto: temples, food"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (21, 3, 24)
    assert r.model == "vicuna-13b" and r.id.startswith("chatcmpl-")
    assert chat_handle.requests[-1].params.sampling.temperature == 0.1


def test_chat_stream(client, chat_handle):
    stream = client.chat.completions.create(
        model="vicuna-13b", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Kyoto: temples, food"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 24


def test_stream_error_event_raises_in_client(client, chat_handle):
    chat_handle.script = [TextDelta("x"), Failed(EngineFailed("the model's worker died"))]
    with pytest.raises(openai.APIError, match="the model's worker died"):
        list(client.chat.completions.create(model="vicuna-13b", messages=MESSAGES, stream=True))


def test_completions(client, chat_handle):
    r = client.completions.create(model="vicuna-13b", prompt="Kyoto is", max_tokens=8)
    assert r.choices[0].text == "Kyoto: temples, food"
    assert r.usage.completion_tokens == 3
    stream = client.completions.create(model="vicuna-13b", prompt="Kyoto is", stream=True)
    assert "".join(c.choices[0].text for c in stream) == "Kyoto: temples, food"


def test_embeddings(client):
    # The client asks for base64 by default and decodes it.
    r = client.embeddings.create(model="embedder", input="hello")
    assert r.data[0].embedding == [0.5, -0.25, 2.0]
    r = client.embeddings.create(model="embedder", input=["hello", "abc"], encoding_format="float")
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[1].embedding == [3.0, 0.5, -1.0]


def test_models(client):
    assert [m.id for m in client.models.list()] == ["vicuna-13b", "embedder"]


def test_errors_become_client_exceptions(client):
    with pytest.raises(openai.NotFoundError, match='model "gpt-4" not found'):
        client.chat.completions.create(model="gpt-4", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="does not serve embeddings"):
        client.embeddings.create(model="vicuna-13b", input="x")


def test_real_disconnect_cancels_stream(served, chat_handle):
    base, manager = served
    chat_handle.script = [TextDelta("first"), Hang()]
    cancelled_before = chat_handle.cancelled
    with httpx.Client(base_url=base, timeout=10) as http:
        with http.stream("POST", "/v1/chat/completions", json={"messages": MESSAGES, "stream": True}) as r:
            for line in r.iter_lines():
                if "first" in line:
                    break
    deadline = time.monotonic() + 5
    while chat_handle.cancelled == cancelled_before:
        assert time.monotonic() < deadline, "the generation was not cancelled after the client left"
        time.sleep(0.02)
    while manager.held:
        assert time.monotonic() < deadline, "the model handle was not released"
        time.sleep(0.02)


def test_real_disconnect_cancels_non_stream(served, chat_handle):
    base, manager = served
    chat_handle.script = [TextDelta("thinking"), Hang()]
    cancelled_before = chat_handle.cancelled
    with httpx.Client(base_url=base) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/chat/completions", json={"messages": MESSAGES}, timeout=0.3)
    deadline = time.monotonic() + 5
    while chat_handle.cancelled == cancelled_before or manager.held:
        assert time.monotonic() < deadline, "the generation was not cancelled after the client left"
        time.sleep(0.02)
