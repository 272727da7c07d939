"""Every failure reaches the client as {"error": {"code", "message", "type"}} with its status."""
from __future__ import annotations

import logging

import pytest

from server.engine.types import Failed, TextDelta
from server.errors import (
    EngineFailed,
    FeatureDisabled,
    InvalidRequest,
    LlamaslotsError,
    ModelLoadFailed,
    ModelNotFound,
    PromptTooLong,
    ServerBusy,
    Unauthorized,
)
from tests.api.conftest import sse_events
from tests.api.fakes import FakeHandle, FakeManager, Hang, model_config

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Hi"}]

ERRORS = [
    (InvalidRequest("bad thing"), 400, "invalid_request_error"),
    (ModelNotFound("nope"), 404, "invalid_request_error"),
    (PromptTooLong(900, 512), 400, "invalid_request_error"),
    (FeatureDisabled("no embeddings here"), 400, "invalid_request_error"),
    (Unauthorized("who are you"), 401, "authentication_error"),
    (ModelLoadFailed("m", "out of memory"), 500, "server_error"),
    (EngineFailed("decode failed"), 500, "server_error"),
    (ServerBusy("queue full"), 503, "server_error"),
    (LlamaslotsError("generic"), 500, "server_error"),
]


@pytest.mark.parametrize("exc,status,type_", ERRORS, ids=lambda x: type(x).__name__)
async def test_error_raised_before_generation(client, manager: FakeManager, exc, status, type_, monkeypatch):
    def config_for(name):
        raise exc

    monkeypatch.setattr(manager, "config_for", config_for)
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == status
    assert r.json() == {"error": {"code": status, "message": exc.message, "type": type_}}


@pytest.mark.parametrize("exc,status,type_", ERRORS, ids=lambda x: type(x).__name__)
async def test_error_from_engine_event(client, handle, exc, status, type_):
    handle.script = [Failed(exc)]
    r = await client.post("/v1/completions", json={"prompt": "x"})
    assert r.status_code == status
    assert r.json() == {"error": {"code": status, "message": exc.message, "type": type_}}


async def test_unknown_model_404_message(client):
    r = await client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": MESSAGES})
    assert r.status_code == 404
    assert r.json() == {
        "error": {
            "code": 404,
            "message": 'model "gpt-4" not found. To see available models, call GET /v1/models',
            "type": "invalid_request_error",
        }
    }


async def test_model_load_failure_shows_real_reason(client, manager):
    manager.load_failures["karakuri-70b"] = "cudaMalloc failed: out of memory"
    r = await client.post("/v1/chat/completions", json={"model": "karakuri-70b", "messages": MESSAGES, "stream": True})
    assert r.status_code == 500
    assert r.json()["error"]["message"] == "could not load model karakuri-70b: cudaMalloc failed: out of memory"
    assert manager.held == 0


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "the request body is empty"),
        (b"{not json", "the request body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        (b'[{"role": "user"}]', "the request body must be a JSON object, got a JSON array"),
        (b'"hello"', "got a JSON string"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
async def test_body_not_a_json_object(client, content, expected):
    r = await client.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 400 and err["type"] == "invalid_request_error"
    assert expected in err["message"]


@pytest.mark.parametrize(
    "body,field_text",
    [
        ({"messages": MESSAGES, "temperature": "hot"}, "temperature: Input should be a valid number"),
        ({"messages": MESSAGES, "max_tokens": "many"}, "max_tokens: Input should be a valid integer"),
        ({"messages": MESSAGES, "stop": 5}, "stop: "),
        ({"model": "vicuna-13b"}, "messages: field required"),
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"messages": [{"content": "no role"}]}, "messages[0].role: field required"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content: "),
        ({"messages": MESSAGES, "stream_options": {"include_usage": "maybe"}}, "stream_options.include_usage: "),
    ],
)
async def test_validation_errors_name_the_field(client, body, field_text):
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["message"].startswith("invalid request: ")
    assert field_text in err["message"]


async def test_n_out_of_range_is_refused(client, handle):
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "n": 0})
    assert r.status_code == 400 and "n must be between 1 and 16" in r.json()["error"]["message"]
    r = await client.post("/v1/completions", json={"prompt": "x", "n": 17, "stream": True})
    assert r.status_code == 400
    assert handle.requests == []


async def test_streamed_n_choices_carry_their_index_and_end_once(client, handle):
    r = await client.post("/v1/chat/completions", json={
        "messages": MESSAGES, "n": 3, "seed": 5, "stream": True, "stream_options": {"include_usage": True}})
    events = sse_events(r.text)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    usage = events[-2]
    assert usage["choices"] == []
    chunks = [e for e in events[:-2]]
    by_index: dict[int, str] = {}
    finishes = {}
    for e in chunks:
        (choice,) = e["choices"]
        by_index[choice["index"]] = by_index.get(choice["index"], "") + (choice["delta"].get("content") or "")
        if choice["finish_reason"]:
            finishes[choice["index"]] = choice["finish_reason"]
    assert sorted(by_index) == [0, 1, 2] and len(set(by_index.values())) == 1 and by_index[0]
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}
    assert [req.params.sampling.seed for req in handle.requests] == [5, 6, 7]
    single = sse_events((await client.post("/v1/chat/completions", json={
        "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}})).text)[-2]["usage"]
    assert usage["usage"]["prompt_tokens"] == single["prompt_tokens"]
    assert usage["usage"]["completion_tokens"] == 3 * single["completion_tokens"]


async def test_n_choices_run_side_by_side_with_their_own_seeds(client, handle):
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "n": 3, "seed": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert [req.params.sampling.seed for req in handle.requests] == [10, 11, 12]
    assert all(req.prompt == handle.requests[0].prompt for req in handle.requests)
    # The prompt is counted once, the completions of every choice.
    single = (await client.post("/v1/chat/completions", json={"messages": MESSAGES, "seed": 10})).json()
    assert body["usage"]["prompt_tokens"] == single["usage"]["prompt_tokens"]
    assert body["usage"]["completion_tokens"] == 3 * single["usage"]["completion_tokens"] > 0


async def test_unknown_route_and_method(client):
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": 404, "message": "no route GET /v1/nothing-here", "type": "invalid_request_error"}}
    r = await client.get("/v1/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == 405


async def test_unexpected_exception_is_a_logged_500(client, manager, monkeypatch, caplog):
    def broken(name):
        raise KeyError("boom")

    monkeypatch.setattr(manager, "config_for", broken)
    caplog.set_level(logging.ERROR, logger="llamaslots.api")
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 500
    assert r.json() == {"error": {"code": 500, "message": "internal server error: KeyError: 'boom'", "type": "server_error"}}
    records = [rec for rec in caplog.records if rec.name == "llamaslots.api" and rec.exc_info]
    assert records and records[0].exc_info[0] is KeyError


async def test_a_failing_choice_ends_the_stream_and_cancels_the_others(client, manager):
    class OneFails(FakeHandle):
        async def generate(self, req):
            if req.params.sampling.seed == 6:
                self.requests.append(req)
                yield Failed(EngineFailed("decode failed"))
                return
            async for ev in super().generate(req):
                yield ev

    handle = OneFails(model_config("flaky"), [TextDelta("a"), Hang()])
    manager.handles["flaky"] = handle
    r = await client.post("/v1/chat/completions", json={
        "model": "flaky", "messages": MESSAGES, "n": 3, "seed": 5, "stream": True})
    events = sse_events(r.text)
    assert events[-1] == {"error": {"code": 500, "message": "decode failed", "type": "server_error"}}
    assert "[DONE]" not in events
    # The two hanging choices were cancelled and the model handle went back.
    assert handle.cancelled == 2 and manager.held == 0


async def test_unexpected_exception_mid_stream_is_an_error_event(client, handle, manager, caplog, monkeypatch):
    class BrokenPostprocessor:
        def __init__(self, config):
            pass

        def feed(self, delta):
            raise ValueError("postprocessing bug")

        def finish(self):
            return ""

    monkeypatch.setattr("server.api.openai.StreamPostprocessor", BrokenPostprocessor)
    caplog.set_level(logging.ERROR, logger="llamaslots.api")
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    events = sse_events(r.text)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1] == {
        "error": {"code": 500, "message": "internal server error: ValueError: postprocessing bug", "type": "server_error"}
    }
    assert any(rec.exc_info and rec.exc_info[0] is ValueError for rec in caplog.records)
    # The generation was cancelled and the model handle given back.
    assert handle.cancelled == 1 and manager.held == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_bad_cutstrings_regex_is_500_and_releases_the_model(client, manager, stream):
    # Go's regexp has no lookahead; LocalAI would die on this at reply time.
    manager.handles["bad"] = FakeHandle(model_config("bad", cutstrings=["(?=x)"]))
    r = await client.post("/v1/chat/completions", json={"model": "bad", "messages": MESSAGES, "stream": stream})
    assert r.status_code == 500
    assert "error parsing regexp: invalid or unsupported Perl syntax" in r.json()["error"]["message"]
    assert manager.held == 0


async def test_prompt_builder_request_error_is_400_and_releases_the_model(client, manager):
    from compat.config_schema import TemplateConfig

    # A GGUF chat template that refuses the conversation, as many do (raise_exception).
    refusing = "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
    manager.handles["strict"] = FakeHandle(model_config("strict", template=TemplateConfig()), chat_template=refusing)
    r = await client.post("/v1/chat/completions", json={"model": "strict", "messages": MESSAGES, "stream": True})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Conversation roles must alternate user/assistant/user/assistant"
    assert manager.held == 0
