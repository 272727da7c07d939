"""The Responses API end to end with the unmodified openai client, on the scripted agent GGUF:
text, reasoning, function calls, continuing by previous_response_id or by sending the items back."""
from __future__ import annotations

import json
import shutil

import openai
import pytest

from tests.serving import running_server
from tests.test_e2e_tools import CONFIG

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather of a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                          "required": ["city"], "additionalProperties": False}}
ASK = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def client(tmp_path_factory, gguf_path):
    models = tmp_path_factory.mktemp("models")
    for name in ("spm-agent", "spm-random"):
        shutil.copy(gguf_path(name), models / f"{name}.gguf")
    (models / "config.yaml").write_text(CONFIG)
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with running_server(models / "config.yaml", models, log) as base:
        yield openai.OpenAI(base_url=base + "/v1", api_key="None", max_retries=0, timeout=120)


def test_text_input_gives_reasoning_then_message(client):
    r = client.responses.create(model="agent", input="2+2?")
    assert r.status == "completed" and r.object == "response" and r.id.startswith("resp_")
    reasoning, message = r.output
    assert reasoning.type == "reasoning" and reasoning.content[0].text == "Let me think."
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert r.output_text == "Four."
    u = r.usage
    assert u.input_tokens > 0 and u.output_tokens > 0 and u.total_tokens == u.input_tokens + u.output_tokens
    assert u.input_tokens_details.cached_tokens + u.input_tokens_details.cache_write_tokens == u.input_tokens
    # " Let", " me", " think.", "</think>" (the template opened <think>), then " Four.".
    assert (u.output_tokens_details.reasoning_tokens, u.output_tokens) == (4, 5)


def test_stream_helper_accumulates_the_same_answer(client):
    with client.responses.stream(model="agent", input="2+2?") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == "Let me think."
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Four."
    assert final.output_text == "Four." and final.usage.output_tokens > 0
    whole = client.responses.create(model="agent", input="2+2?")
    def texts(r):
        return [(i.type, [c.text for c in i.content]) for i in r.output]
    assert texts(whole) == texts(final) == [("reasoning", ["Let me think."]), ("message", ["Four."])]


def test_raw_stream_names_each_event(client):
    # The `event:` line matches the data's type, as OpenAI sends it (some clients read only that).
    import httpx
    with httpx.stream("POST", str(client.base_url) + "responses", timeout=60,
                      json={"model": "agent", "input": "2+2?", "stream": True}) as resp:
        lines = [line for line in resp.iter_lines() if line]
    names = [line[len("event: "):] for line in lines if line.startswith("event: ")]
    types = [json.loads(line[len("data: "):])["type"] for line in lines if line.startswith("data: ")]
    assert names == types and types[-1] == "response.completed"
    assert "[DONE]" not in "".join(lines)


def test_function_call_item(client):
    r = client.responses.create(model="agent", input=ASK, tools=[WEATHER])
    (call,) = r.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id.startswith("call_")
    assert r.output_text == "" and r.tools[0].name == "get_weather"


def test_streamed_function_call_and_parsed_arguments(client):
    with client.responses.stream(model="agent", input=ASK, tools=[WEATHER], tool_choice="required") as stream:
        events = list(stream)
        final = stream.get_final_response()
    pieces = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done.name == "get_weather" and done.arguments == pieces
    (call,) = final.output
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.parsed_arguments == {"city": "Paris"}  # the client parses strict tools' arguments


def test_previous_response_id_continues_the_conversation(client):
    first = client.responses.create(model="agent", input=ASK, tools=[WEATHER])
    (call,) = first.output
    second = client.responses.create(model="agent", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}])
    assert second.output_text == " it is sunny." and second.previous_response_id == first.id
    # Stateless: the items sent back give the same turn.
    third = client.responses.create(model="agent", tools=[WEATHER], store=False, input=[
        {"role": "user", "content": ASK}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}])
    assert third.output_text == " it is sunny."
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.responses.retrieve(third.id)


def test_retrieve_and_delete(client):
    r = client.responses.create(model="agent", input="2+2?")
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == "Four."
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError, match="resp_nope"):
        client.responses.create(model="agent", input="hi", previous_response_id="resp_nope")


def test_max_output_tokens_makes_it_incomplete(client):
    r = client.responses.create(model="agent", input="2+2?", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 2
    events = list(client.responses.create(model="agent", input="2+2?", max_output_tokens=2, stream=True))
    assert events[-1].type == "response.incomplete"


def test_output_text_logprobs(client):
    r = client.responses.create(model="agent", input="2+2?", include=["message.output_text.logprobs"],
                                top_logprobs=2)
    part = r.output[1].content[0]
    assert "".join(lp.token for lp in part.logprobs).strip() == part.text == "Four."
    assert all(len(lp.top_logprobs) == 2 and lp.top_logprobs[0].token == lp.token for lp in part.logprobs)


def test_json_schema_text_format_on_random_weights(client):
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}},
              "required": ["n"], "additionalProperties": False}
    r = client.responses.create(model="random", input="a number", max_output_tokens=60,
                                text={"format": {"type": "json_schema", "name": "num", "schema": schema}})
    assert 0 <= json.loads(r.output_text)["n"] <= 9


@pytest.mark.parametrize("bad, message", [
    ({"background": True}, "background responses are not supported"),
    ({"tools": [{"type": "web_search"}]}, "only function tools"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}]},
     "input_image parts are not supported"),
    ({"include": ["reasoning.encrypted_content"]}, "is not available here"),
    ({"truncation": "auto"}, "nothing is dropped"),
    ({"text": {"verbosity": "low"}}, "only medium"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference is not supported"),
    ({"input": []}, "the list is empty"),
])
def test_what_we_cannot_do_is_a_400(client, bad, message):
    body = {"model": "agent", "input": "hi", **bad}
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/responses", body=body, cast_to=object)
    assert message in str(err.value)


def test_chat_spellings_are_named(client):
    with pytest.raises(openai.BadRequestError, match="max_tokens is a chat completions field.*max_output_tokens"):
        client.post("/responses", body={"model": "agent", "input": "hi", "max_tokens": 3}, cast_to=object)
