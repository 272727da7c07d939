"""compat.tool_calls: what a request asks, the grammar, and the calls in a reply (whole = streamed)."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from compat.config_schema import FunctionsConfig, GrammarConfig
from compat.errors import RequestError
from compat.tool_calls import (
    CallArguments, CallStart, ContentDelta, Tool, ToolCallParser, ToolRequest, ToolSettings, native_format,
    parse_reply, parse_with_regex_rules, tool_grammar, tool_request, tool_settings,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
REQ = ToolRequest((Tool("get_weather", "", WEATHER["function"]["parameters"]),), "auto")


def test_request_decoding_and_its_errors():
    r = tool_request({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert (r.mode, r.name, r.parallel, r.legacy) == ("named", "get_weather", True, False)
    assert tool_request({"functions": [WEATHER["function"]], "function_call": "auto"}).legacy
    assert tool_request({}) is None
    for body, message in [
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}}, "not in the request's tools"),
        ({"tool_choice": "required"}, "has no tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "use letters"),
        ({"tools": [WEATHER, WEATHER]}, "used twice"),
        ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "true or false"),
    ]:
        with pytest.raises(RequestError, match=message):
            tool_request(body)


def test_settings_from_the_function_block():
    cfg = SimpleNamespace(function=FunctionsConfig(
        disable_no_action=True, function_name_key="fn", function_arguments_key="args",
        grammar=GrammarConfig(parallel_calls=True, mixed_mode=True, properties_order="args,fn", prefix=">>")))
    s = tool_settings(cfg)
    assert (s.no_action, s.name_key, s.arguments_key, s.parallel_calls, s.mixed_mode, s.prefix) == (
        False, "fn", "args", True, True, ">>")
    assert s.properties_order == ("args", "fn")


def test_native_format_detection():
    assert native_format("...<tool_call>...") == "hermes"
    assert native_format("...[TOOL_CALLS]...") == "mistral"
    assert native_format("<|start_header_id|>ipython<|end_header_id|>") == "llama3"
    assert native_format("plain chatml") is None


def test_grammars_by_mode_and_format():
    auto = tool_grammar(REQ, "json", ToolSettings())
    assert '"\\"answer\\""' in auto and '"\\"get_weather\\""' in auto  # the no-action function is offered
    required = tool_grammar(ToolRequest(REQ.tools, "required"), "json", ToolSettings())
    assert "answer" not in required  # a real call is forced (LocalAI offers nothing here)
    # The key the config names reaches the grammar (LocalAI passes the name key twice).
    keyed = tool_grammar(REQ, "json", ToolSettings(name_key="fn", arguments_key="args"))
    assert '"\\"fn\\""' in keyed and '"\\"args\\""' in keyed
    assert tool_grammar(REQ, "hermes", ToolSettings()) is None  # auto in a native format: parsed, not forced
    forced = tool_grammar(ToolRequest(REQ.tools, "required"), "hermes", ToolSettings())
    assert forced.startswith('root ::= tool-call+') and '"<tool_call>"' in forced
    assert tool_grammar(ToolRequest(REQ.tools, "none"), "json", ToolSettings()) is None
    assert tool_grammar(REQ, "json", ToolSettings(grammar=False)) is None
    mixed = tool_grammar(REQ, "json", ToolSettings(mixed_mode=True, parallel_calls=True))
    assert mixed.splitlines()[0].startswith("root ::= mixedstring | arr | call")


CASES = [
    ("hermes", 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
     "Sure.\n", [("get_weather", '{"city": "Paris"}')]),
    ("hermes", '<tool_call>{"name": "get_weather", "arguments": {"city": "A"}}</tool_call><tool_call>'
               '{"name": "get_weather", "arguments": {"city": "B"}}</tool_call> done', "done",
     [("get_weather", '{"city": "A"}'), ("get_weather", '{"city": "B"}')]),
    ("hermes", "text with <tool_ but no call", "text with <tool_ but no call", []),
    ("json", '{"name": "get_weather", "arguments": {"city": "Paris"}}', "", [("get_weather", '{"city": "Paris"}')]),
    ("json", '{"name": "answer", "arguments": {"message": "Hi \\"there\\" \\u00e9"}}', 'Hi "there" é', []),
    ("json", "plain text with {braces} in it", "plain text with {braces} in it", []),
    ("json", 'a {"x": 1} b', 'a {"x": 1} b', []),
    ("json", '[{"name": "get_weather", "arguments": {"city": "A"}}, {"name": "get_weather", "arguments": "{}"}]', "",
     [("get_weather", '{"city": "A"}'), ("get_weather", "{}")]),
    ("mistral", 'ok [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Rome"}}]', "ok ",
     [("get_weather", '{"city": "Rome"}')]),
    ("llama3", '{"name": "get_weather", "parameters": {"city": "Oslo"}}', "", [("get_weather", '{"city": "Oslo"}')]),
    ("llama3", "  Hello there", "  Hello there", []),
]


@pytest.mark.parametrize("fmt, text, content, calls", CASES)
def test_replies_parse_the_same_whole_and_streamed(fmt, text, content, calls):
    whole = parse_reply(text, REQ, fmt)
    assert whole.content == content and [(c.name, c.arguments) for c in whole.calls] == calls
    rng = random.Random(len(text))
    for _ in range(60):
        cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, min(10, len(text) - 1))))
        parser = ToolCallParser(REQ, fmt)
        events = []
        for a, b in zip([0, *cuts], [*cuts, len(text)]):
            events += parser.feed(text[a:b])
        events += parser.finish()
        assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == content
        starts = [e for e in events if isinstance(e, CallStart)]
        assert [s.name for s in starts] == [n for n, _ in calls]
        for s, (_, args) in zip(starts, calls):
            pieces = "".join(e.text for e in events if isinstance(e, CallArguments) and e.index == s.index)
            assert json.loads(pieces) == json.loads(args)


def test_a_call_is_announced_as_soon_as_its_name_is_complete():
    parser = ToolCallParser(REQ, "hermes")
    assert parser.feed("<tool_call>{\"name\": \"get_wea") == []
    (start,) = parser.feed("ther\", ")
    assert isinstance(start, CallStart) and start.name == "get_weather" and start.index == 0
    events = parser.feed('"arguments": {"ci')
    assert [type(e) for e in events] == [CallArguments] and events[0].text == '{"ci'


def test_localai_regex_rules():
    s = ToolSettings(response_regex=(r"<call (?P<name>\w+)>(?P<arguments>.*?)</call>",),
                     capture_llm_results=(r"(?s)^(.*?)<call",))
    content, calls = parse_with_regex_rules('I will look. <call get_weather>{"city":"Oslo"}</call>', s)
    assert content == "I will look." and calls == [("get_weather", '{"city":"Oslo"}')]
    s = ToolSettings(json_regex_match=(r"(?s)<json>(.*?)</json>",))
    assert parse_with_regex_rules('x <json>{"name": "f", "arguments": {"b": 1, "a": "<"}}</json>', s)[1] == [
        ("f", '{"a":"\\u003c","b":1}')]  # Go's json.Marshal: sorted keys, <>& escaped
    s = ToolSettings(response_regex=(r"(?P<name>\w+)\((?P<arguments>[^)]*)\)",),
                     argument_regex=(r"(?P<key>\w+)=(?P<value>\w+)",))
    assert parse_with_regex_rules("lookup(city=Rome, unit=C)", s)[1] == [("lookup", '{"city":"Rome","unit":"C"}')]
    s = ToolSettings(replace_llm_results=((r"^```json\s*", ""), (r"```$", "")), automatic_parsing_fallback=True)
    assert parse_with_regex_rules('```json\n{"name": "f", "arguments": "plain"}```', s)[1] == [
        ("f", '{"query":"plain"}')]
