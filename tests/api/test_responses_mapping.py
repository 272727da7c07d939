"""The Responses API's request -> chat request mapping and its bounded memory."""
from __future__ import annotations

import pytest

from server.api.responses import (
    ResponseNotFound, ResponseStore, StoredResponse, chat_tools, input_messages, responses_call,
)
from server.api.schemas import ResponsesRequest
from server.errors import InvalidRequest


def test_items_become_chat_messages():
    msgs = input_messages([
        {"role": "developer", "content": "be brief"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "let me look"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"a\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "one"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "two"},
    ])
    assert msgs == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "let me look"}], "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]


def test_a_call_without_a_message_before_it_is_its_own_assistant_turn():
    assert input_messages([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]) == [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]


@pytest.mark.parametrize("item, message", [
    ({"role": "tool", "content": "x"}, "input[0].role must be"),
    ({"type": "function_call", "name": "f", "arguments": "{}"}, "input[0].call_id must be a string"),
    ({"type": "file_search_call", "id": "x"}, "'file_search_call' are not supported"),
    ({"role": "user", "content": [{"type": "input_text"}]}, "input[0].content[0] is not a text part"),
])
def test_bad_items_are_named(item, message):
    with pytest.raises(InvalidRequest) as err:
        input_messages([item])
    assert message in err.value.message


def test_flat_tools_become_nested():
    assert chat_tools([{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": None}]) == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def test_chat_body_carries_the_settings_and_the_stored_conversation():
    store = ResponseStore()
    store.put(StoredResponse({"id": "resp_1"}, [{"role": "user", "content": "a"},
                                               {"role": "assistant", "content": "b"}]))
    req = ResponsesRequest.model_validate({
        "model": "m", "input": "c", "instructions": "sys", "previous_response_id": "resp_1",
        "max_output_tokens": 5, "temperature": 0.2, "reasoning": {"effort": "low"}, "top_k": 3,
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}})
    call = responses_call(req, store)
    assert call.chat_body == {
        "model": "m", "top_k": 3, "max_tokens": 5, "temperature": 0.2, "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "a"},
                     {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}
    # Instructions are not part of what the next turn continues (OpenAI's rule).
    assert call.history == call.chat_body["messages"][1:]


def test_the_store_forgets_the_oldest_first():
    store = ResponseStore(capacity=2)
    for i in range(3):
        store.put(StoredResponse({"id": f"r{i}"}, []))
    store.get("r1")
    store.put(StoredResponse({"id": "r3"}, []))
    with pytest.raises(ResponseNotFound):
        store.get("r0")
    with pytest.raises(ResponseNotFound):
        store.get("r2")  # r1 was used more recently
    assert store.get("r1") and store.get("r3")
