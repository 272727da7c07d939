"""Chat completions over the fake engine: shapes, usage, streaming framing, post-processing."""
from __future__ import annotations

import logging

import pytest

from compat.config_schema import PredictionOptions
from server.engine.types import Failed, Finished, TextDelta, Usage
from server.errors import EngineFailed, PromptTooLong
from tests.api.conftest import sse_events
from tests.api.fakes import model_config, FakeHandle, FakeManager, script_text

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "system", "content": "You are a guide."}, {"role": "user", "content": "Hi"}]


async def test_non_stream_shape_and_usage(client, handle):
    handle.script = script_text("Hello", " there", reason="length", prompt_tokens=11, cached=4)
    r = await client.post("/v1/chat/completions", json={"model": "vicuna-13b", "messages": MESSAGES, "max_tokens": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "vicuna-13b"
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "length",
         "logprobs": None}
    ]
    assert body["usage"] == {
        "prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 0},  # split, and nothing in a block
    }
    # The merged params and the built prompt reached the engine.
    (req,) = handle.requests
    assert req.prompt == "system: You are a guide.\nuser: Hi"
    assert req.params.max_tokens == 2
    assert req.add_special is True


async def test_model_missing_uses_first_model(client, manager):
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "vicuna-13b"
    assert manager.acquired == ["vicuna-13b"]


async def test_other_model_is_acquired(client, manager):
    r = await client.post("/chat/completions", json={"model": "karakuri-70b", "messages": MESSAGES})
    assert r.status_code == 200
    assert r.json()["model"] == "karakuri-70b"
    assert manager.acquired == ["karakuri-70b"]
    assert manager.held == 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
async def test_both_prefixes(client, path):
    r = await client.post(path, json={"messages": MESSAGES})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Hello world"


async def test_tokenizer_template_from_model_info(client, manager):
    from compat.config_schema import TemplateConfig

    template = "{{ bos_token }}{% for m in messages %}{{ m.role }}> {{ m.content }}\n{% endfor %}"
    handle = FakeHandle(model_config("gguf-model", template=TemplateConfig()), chat_template=template)
    manager.handles["gguf-model"] = handle
    r = await client.post("/v1/chat/completions", json={"model": "gguf-model", "messages": MESSAGES})
    assert r.status_code == 200
    (req,) = handle.requests
    # The template writes the BOS text itself; as in llama-server that text is dropped and the
    # vocabulary's add-BOS rule puts exactly one BOS back.
    assert req.prompt == "system> You are a guide.\nuser> Hi\n"
    assert req.add_special is True


async def test_unknown_field_logged_with_did_you_mean(client, caplog):
    caplog.set_level(logging.WARNING, logger="llamaslots.api")
    body = {"model": "vicuna-13b", "templature": 0.1, "top_p": 0.1, "messages": MESSAGES}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    warnings = [rec for rec in caplog.records if rec.name == "llamaslots.api" and rec.levelno == logging.WARNING]
    assert any('"templature"' in w.getMessage() and 'did you mean "temperature"' in w.getMessage() for w in warnings)


async def test_prompt_warnings_are_logged(client, manager, caplog):
    from compat.config_schema import TemplateConfig

    caplog.set_level(logging.WARNING, logger="llamaslots.api")
    # A per-message field in the whole-prompt template: LocalAI falls back to the joined text.
    manager.handles["odd"] = FakeHandle(model_config("odd", template=TemplateConfig(chat="{{.Content}}")))
    r = await client.post("/v1/chat/completions", json={"model": "odd", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert any("template.chat failed" in rec.getMessage() and "can't evaluate field Content" in rec.getMessage()
               for rec in caplog.records)


async def test_stream_framing(client, handle, manager):
    handle.script = script_text("Hel", "lo")
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "vicuna-13b" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["Hel", "lo"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert all("usage" not in c for c in chunks)
    assert manager.held == 0 and handle.completed == 1


async def test_stream_include_usage(client, handle):
    handle.script = script_text("a", "b", "c", reason="length", prompt_tokens=5, cached=2)
    r = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
    )
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    usage_chunk, finish_chunk = events[-2], events[-3]
    assert finish_chunk["choices"][0]["finish_reason"] == "length"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _postprocessing_manager() -> tuple[FakeManager, FakeHandle]:
    config = model_config("pp", cutstrings=[r"\[INST\].*?\[/INST\]"], trimsuffix=["</s>"])
    handle = FakeHandle(config, script_text("Tokyo", "[INST]x", "[/INST] is", " nice", "</s>"))
    return FakeManager([handle]), handle


async def test_postprocessing_non_stream(client, manager):
    pp_manager, pp = _postprocessing_manager()
    manager.handles.update(pp_manager.handles)
    r = await client.post("/v1/chat/completions", json={"model": "pp", "messages": MESSAGES})
    assert r.json()["choices"][0]["message"]["content"] == "Tokyo is nice"


async def test_postprocessing_stream(client, manager):
    pp_manager, pp = _postprocessing_manager()
    manager.handles.update(pp_manager.handles)
    r = await client.post("/v1/chat/completions", json={"model": "pp", "messages": MESSAGES, "stream": True})
    chunks = [e for e in sse_events(r.text) if e != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Tokyo is nice"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_reply_prefix_non_stream_and_stream(client, manager):
    config = model_config("thinker", reply_prefix="<think>")
    manager.handles["thinker"] = FakeHandle(config, script_text("hmm</think>", "42"))
    # reply_prefix is part of the reply (LocalAI's way to make a model think), so the
    # reasoning it opens is split out like one the model wrote.
    r = await client.post("/v1/chat/completions", json={"model": "thinker", "messages": MESSAGES})
    message = r.json()["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("42", "hmm")
    r = await client.post("/v1/chat/completions", json={"model": "thinker", "messages": MESSAGES, "stream": True})
    chunks = [e for e in sse_events(r.text) if e != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert deltas == [{"reasoning_content": "hmm"}, {"content": "42"}]
    off = await client.post("/v1/chat/completions", json={"model": "thinker", "messages": MESSAGES,
                                                          "reasoning_effort": "none"})
    assert off.json()["choices"][0]["message"] == {"role": "assistant", "content": "<think>hmm</think>42"}


async def test_reasoning_tokens_are_reported_stream_and_not(client, manager):
    config = model_config("thinker", reply_prefix="<think>")
    steps = [TextDelta("hmm", n_tokens=2), TextDelta(" ok</think>", n_tokens=2), TextDelta("42", n_tokens=1),
             Finished("stop", Usage(7, 5))]
    manager.handles["thinker"] = FakeHandle(config, steps)
    r = await client.post("/v1/chat/completions", json={"model": "thinker", "messages": MESSAGES, "n": 2})
    usage = r.json()["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 8} and usage["completion_tokens"] == 10
    r = await client.post("/v1/chat/completions", json={"model": "thinker", "messages": MESSAGES, "stream": True,
                                                        "stream_options": {"include_usage": True}})
    assert sse_events(r.text)[-2]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    # Reasoning not split (reasoning_effort none): no count, and no field.
    off = await client.post("/v1/chat/completions", json={"model": "thinker", "messages": MESSAGES,
                                                          "reasoning_effort": "none"})
    assert "completion_tokens_details" not in off.json()["usage"]
    # Completions do not split reasoning either.
    r = await client.post("/v1/completions", json={"model": "thinker", "prompt": "x"})
    assert "completion_tokens_details" not in r.json()["usage"]


async def test_failed_event_non_stream_gives_its_status(client, handle):
    handle.script = [Failed(PromptTooLong(900, 512))]
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 400 and err["type"] == "invalid_request_error"
    assert "900 prompt tokens" in err["message"]


async def test_failed_mid_stream_sends_error_event_then_ends(client, handle, manager):
    handle.script = [TextDelta("partial"), Failed(EngineFailed("llama_decode returned -1"))]
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[1]["choices"][0]["delta"]["content"] == "partial"
    assert events[-1] == {"error": {"code": 500, "message": "llama_decode returned -1", "type": "server_error"}}
    assert "[DONE]" not in events
    assert manager.held == 0


async def test_engine_cancelled_is_a_retryable_error(client, handle):
    handle.script = [TextDelta("x"), Finished("cancelled", Usage(3, 1))]
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 503
    assert "retry" in r.json()["error"]["message"]
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    assert sse_events(r.text)[-1]["error"]["code"] == 503


async def test_generation_without_finish_is_an_error(client, handle):
    handle.script = [TextDelta("x")]
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 500
    assert "without a result" in r.json()["error"]["message"]


async def test_request_merged_over_config(client, manager):
    config = model_config("cfg", stopwords=["### Human:"], parameters=PredictionOptions(temperature=0.2))
    handle = FakeHandle(config)
    manager.handles["cfg"] = handle
    body = {"model": "cfg", "messages": MESSAGES, "stop": "\n\n", "top_k": 5, "max_tokens": -1}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    params = handle.requests[0].params
    assert params.stop == ("### Human:", "\n\n")  # request stops are appended to the config's
    assert params.sampling.temperature == 0.2 and params.sampling.top_k == 5
    assert params.max_tokens is None  # -1: no limit
    await client.post("/v1/chat/completions", json={**body, "temperature": 0})
    assert handle.requests[1].params.sampling.temperature == 0.0


async def test_bad_value_found_by_merge_is_400(client):
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "logit_bias": {"abc": 1}})
    assert r.status_code == 400
    assert "logit_bias key 'abc' is not a token id" in r.json()["error"]["message"]


async def test_fields_localai_does_not_apply_are_logged(client, caplog):
    caplog.set_level(logging.WARNING, logger="llamaslots.api")
    r = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "mirostat": 2})
    assert r.status_code == 200
    assert any('"mirostat" is not applied per request' in rec.getMessage() for rec in caplog.records)
