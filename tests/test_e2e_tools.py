"""End to end with the unmodified openai client: tool calls (native and LocalAI's JSON way), reasoning,
logprobs, on scripted and random GGUFs."""
from __future__ import annotations

import json
import math
import shutil

import openai
import pytest

from tests.serving import running_server

CONFIG = """
# The agent's own GGUF template (Hermes-style <tool_call>), as a LocalAI v3.8+ config leaves it.
- name: agent
  context_size: 1024
  threads: 2
  parameters:
    model: spm-agent.gguf
    temperature: 0

# The same model through LocalAI Go templates: tools make the `function` template the prompt,
# and the reply is LocalAI's JSON call.
- name: agent-json
  context_size: 1024
  threads: 2
  parameters:
    model: spm-agent.gguf
    temperature: 0
  template:
    chat: "{{.Input}}\\nREPLY:"
    function: "{{.Input}}\\nCALL:"

- name: agent-answer
  context_size: 1024
  threads: 2
  parameters:
    model: spm-agent.gguf
    temperature: 0
  template:
    chat: "{{.Input}}\\nREPLY:"
    function: "{{.Input}}\\nREPLY:"

- name: random
  context_size: 2048
  threads: 2
  parameters:
    model: spm-random.gguf
    temperature: 1.0
    seed: 3
"""

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                       "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"enum": ["UTC", "JST"]}}, "required": ["zone"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory, gguf_path):
    models = tmp_path_factory.mktemp("models")
    for name in ("spm-agent", "spm-random"):
        shutil.copy(gguf_path(name), models / f"{name}.gguf")
    (models / "config.yaml").write_text(CONFIG)
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with running_server(models / "config.yaml", models, log) as base:
        yield openai.OpenAI(base_url=base + "/v1", api_key="None", max_retries=0, timeout=120)


# -- native tool calls (the GGUF's template) ----------------------------------------------------


@pytest.mark.parametrize("choice", ["auto", "required", {"type": "function", "function": {"name": "get_weather"}}])
def test_native_tool_call(client, choice):
    r = client.chat.completions.create(model="agent", messages=ASK, tools=[WEATHER, TIME], tool_choice=choice)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    assert c.message.content is None
    (call,) = c.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_") and len(call.id) == 29


def test_native_tool_call_streams_name_first_then_arguments(client):
    chunks = list(client.chat.completions.create(model="agent", messages=ASK, tools=[WEATHER], stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert calls[0].id and calls[0].function.name == "get_weather" and calls[0].type == "function"
    assert all(tc.id is None and tc.function.name is None for tc in calls[1:])
    assert json.loads("".join(tc.function.arguments for tc in calls)) == {"city": "Paris"}
    # Never as raw JSON in the content.
    assert not any((d.content or "").strip() for d in deltas)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_the_client_stream_helper_accumulates_our_tool_calls(client):
    with client.chat.completions.stream(model="agent", messages=ASK, tools=[WEATHER]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_choice_none_leaves_the_reply_as_text(client):
    r = client.chat.completions.create(model="agent", messages=ASK, tools=[WEATHER], tool_choice="none")
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
    assert "<tool_call>" in r.choices[0].message.content


def test_a_conversation_with_calls_and_results_is_rendered(client):
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    r = client.chat.completions.create(model="agent", messages=history, tools=[WEATHER])
    assert r.choices[0].message.content == " it is sunny."
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.tool_calls is None


# -- LocalAI's JSON calls (Go templates, the function: config) -----------------------------------------


def test_localai_json_call(client):
    r = client.chat.completions.create(model="agent-json", messages=ASK, tools=[WEATHER])
    (call,) = r.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Rome"})
    assert r.choices[0].finish_reason == "tool_calls"


def test_localai_no_action_answer_is_content_streamed_or_not(client):
    r = client.chat.completions.create(model="agent-answer", messages=ASK, tools=[WEATHER])
    assert r.choices[0].message.content == "Hi there!" and r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(model="agent-answer", messages=ASK, tools=[WEATHER], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi there!"


def test_legacy_functions_come_back_as_function_call(client):
    r = client.chat.completions.create(model="agent-json", messages=ASK, functions=[WEATHER["function"]])
    c = r.choices[0]
    assert c.finish_reason == "function_call"
    assert c.message.function_call.name == "get_weather"


def test_required_is_grammar_forced_on_random_weights(client):
    for seed in range(3):
        r = client.chat.completions.create(model="random", messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
                                           seed=seed, max_tokens=200)
        assert r.choices[0].finish_reason == "tool_calls", r.choices[0]
        call = r.choices[0].message.tool_calls[0]
        args = json.loads(call.function.arguments)
        if call.function.name == "get_weather":
            assert set(args) == {"city"} and isinstance(args["city"], str)
        else:
            assert call.function.name == "get_time" and args["zone"] in ("UTC", "JST")


def test_named_choice_on_random_weights_calls_that_function(client):
    r = client.chat.completions.create(model="random", messages=ASK, tools=[WEATHER, TIME], max_tokens=200,
                                       tool_choice={"type": "function", "function": {"name": "get_time"}})
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_time" and json.loads(call.function.arguments)["zone"] in ("UTC", "JST")


@pytest.mark.parametrize("bad, message", [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not in the request's tools"),
    ({"tools": [{"type": "code_interpreter"}]}, 'only tools of type "function"'),
    ({"tool_choice": "sometimes"}, "tool_choice must be"),
    ({"response_format": {"type": "json_object"}}, "cannot also set grammar or response_format"),
])
def test_tool_requests_we_cannot_honour_are_400(client, bad, message):
    body = {"tools": [WEATHER], **bad}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="agent", messages=ASK, **body)
    assert message in str(err.value)


# -- reasoning ------------------------------------------------------------------------------------


def test_reasoning_is_split_out(client):
    r = client.chat.completions.create(model="agent", messages=[{"role": "user", "content": "2+2?"}])
    m = r.choices[0].message
    assert m.content == "Four." and m.model_extra["reasoning_content"] == "Let me think."
    chunks = list(client.chat.completions.create(model="agent", messages=[{"role": "user", "content": "2+2?"}],
                                                 stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == "Let me think."
    assert "".join(d.content or "" for d in deltas) == "Four."


def test_reasoning_effort_none_leaves_it_in_the_content(client):
    r = client.chat.completions.create(model="agent", messages=[{"role": "user", "content": "2+2?"}],
                                       reasoning_effort="none")
    assert r.choices[0].message.content == " Let me think.</think> Four."


# -- logprobs -------------------------------------------------------------------------------------


def test_chat_logprobs_agree_with_greedy_decoding(client):
    r = client.chat.completions.create(model="agent", messages=[{"role": "user", "content": "2+2?"}],
                                       logprobs=True, top_logprobs=3)
    items = r.choices[0].logprobs.content
    assert "".join(i.token for i in items) == " Let me think.</think> Four."
    for item in items:
        assert item.logprob <= 0 and len(item.top_logprobs) == 3
        # Greedy picks the most likely token: it heads the alternatives, with the same value.
        assert item.top_logprobs[0].token == item.token
        assert math.isclose(item.top_logprobs[0].logprob, item.logprob, abs_tol=1e-5)
        assert bytes(item.bytes).decode() == item.token
    streamed = list(client.chat.completions.create(model="agent", messages=[{"role": "user", "content": "2+2?"}],
                                                   logprobs=True, stream=True))
    tokens = [i.token for c in streamed if c.choices and c.choices[0].logprobs for i in c.choices[0].logprobs.content]
    assert tokens == [i.token for i in items]


def test_completion_logprobs_legacy_shape(gguf_path, client):
    r = client.completions.create(model="agent", prompt="x\nSo", max_tokens=8, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text == " it is sunny."
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    assert all(len(top) == 2 and max(top.values()) == pytest.approx(v, abs=1e-5)
               for top, v in zip(lp.top_logprobs, lp.token_logprobs))


def test_logprobs_out_of_range_are_400(client):
    with pytest.raises(openai.BadRequestError, match="top_logprobs=21"):
        client.chat.completions.create(model="agent", messages=ASK, logprobs=True, top_logprobs=21)
    with pytest.raises(openai.BadRequestError, match="needs logprobs: true"):
        client.chat.completions.create(model="agent", messages=ASK, top_logprobs=2)
