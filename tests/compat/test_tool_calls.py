"""compat.tool_calls: what a request asks, the grammar, and the calls in a reply (whole = streamed)."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from compat.config_schema import FunctionsConfig, GrammarConfig
from compat.errors import RequestError
from tests.gbnf_match import accepts
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


# -- each grammar setting of LocalAI's function: block, by what its grammar accepts ------------------

CALL_A = '{"name": "get_weather", "arguments": {"city": "A"}}'
CALL_B = '{"name": "get_weather", "arguments": {"city": "B"}}'


def grammar_of(**settings) -> str:
    return tool_grammar(REQ, "json", ToolSettings(**settings))


def test_plain_auto_takes_one_call_or_the_answer_function_and_nothing_else():
    g = grammar_of()
    assert accepts(g, CALL_A)
    assert accepts(g, '{"name": "answer", "arguments": {"message": "hi"}}')
    assert not accepts(g, "hello") and not accepts(g, f"[{CALL_A}]")
    assert not accepts(g, '{"name": "get_weather", "arguments": {"town": "A"}}')


def test_parallel_calls_take_an_array_with_new_lines_unless_disabled():
    g = grammar_of(parallel_calls=True)
    assert accepts(g, f"[\n{CALL_A},\n{CALL_B}]") and accepts(g, CALL_A)
    assert not accepts(g, f"[{CALL_A},{CALL_B}]")
    g = grammar_of(parallel_calls=True, disable_parallel_new_lines=True)
    assert accepts(g, f"[{CALL_A},{CALL_B}]")  # the new lines become optional whitespace
    # A request that turns parallel calls off gets one call even where the config allows more.
    assert not accepts(tool_grammar(ToolRequest(REQ.tools, "auto", parallel=False), "json",
                                    ToolSettings(parallel_calls=True)), f"[\n{CALL_A}]")


def test_mixed_mode_free_text_before_a_call_and_after_it_only_when_expected():
    g = grammar_of(mixed_mode=True)
    assert accepts(g, "just words") and accepts(g, f"I will check. {CALL_A}") and accepts(g, CALL_A)
    g = grammar_of(mixed_mode=True, expect_strings_after_json=True)
    assert accepts(g, f"Checking {CALL_A} done")
    g = grammar_of(mixed_mode=True, no_mixed_free_string=True)
    assert accepts(g, "anything at all") and accepts(g, CALL_A)
    # Forcing a call leaves mixed mode out.
    forced = tool_grammar(ToolRequest(REQ.tools, "required"), "json", ToolSettings(mixed_mode=True))
    assert not accepts(forced, "just words") and accepts(forced, CALL_A)


def test_prefix_comes_before_the_call():
    g = grammar_of(prefix="<<CALL>>")
    assert accepts(g, "<<CALL>>" + CALL_A) and not accepts(g, CALL_A)


def test_llama31_schema_type_writes_function_tags():
    g = grammar_of(schema_type="llama3.1")
    assert accepts(g, '<function=get_weather>{"city": "A"}</function>')
    assert not accepts(g, CALL_A)
    parsed = parse_reply('<function=get_weather>{"city": "A"}</function>', REQ, "json",
                         ToolSettings(schema_type="llama3.1"))
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [("get_weather", {"city": "A"})]


def test_key_names_and_their_order():
    g = grammar_of(name_key="function", arguments_key="args", properties_order=("args", "function"))
    assert accepts(g, '{"args": {"city": "A"}, "function": "get_weather"}')
    assert not accepts(g, '{"function": "get_weather", "args": {"city": "A"}}')
    parsed = parse_reply('{"args": {"city": "A"}, "function": "get_weather"}', REQ, "json",
                         ToolSettings(name_key="function", arguments_key="args"))
    assert [c.name for c in parsed.calls] == ["get_weather"]


def test_no_action_function_name_and_its_absence():
    g = grammar_of(no_action_name="reply")
    assert accepts(g, '{"name": "reply", "arguments": {"message": "hi"}}')
    assert not accepts(g, '{"name": "answer", "arguments": {"message": "hi"}}')
    assert parse_reply('{"name": "reply", "arguments": {"message": "hi"}}', REQ, "json",
                       ToolSettings(no_action_name="reply")).content == "hi"
    assert not accepts(grammar_of(no_action=False), '{"name": "answer", "arguments": {"message": "hi"}}')


def test_grammar_disable_leaves_auto_free_but_a_strict_tool_keeps_its_grammar():
    assert grammar_of(grammar=False) is None
    strict = ToolRequest((Tool("get_weather", "", REQ.tools[0].parameters, strict=True),), "auto")
    assert accepts(tool_grammar(strict, "json", ToolSettings(grammar=False)), CALL_A)


def test_the_function_block_reaches_the_settings_by_localai_names():
    cfg = SimpleNamespace(function=FunctionsConfig(
        no_action_function_name="reply", no_action_description_name="say it",
        argument_regex_key_name="k", argument_regex_value_name="v", automatic_tool_parsing_fallback=True,
        replace_function_results=[{"key": "x", "value": "y"}], capture_llm_results=["(.*)"],
        grammar=GrammarConfig(no_mixed_free_string=True, disable_parallel_new_lines=True,
                              expect_strings_after_json=True, schema_type="llama3.1")))
    s = tool_settings(cfg)
    assert (s.no_action_name, s.no_action_description, s.argument_regex_key, s.argument_regex_value) == (
        "reply", "say it", "k", "v")
    assert s.automatic_parsing_fallback and s.replace_function_results == (("x", "y"),)
    assert (s.no_mixed_free_string, s.disable_parallel_new_lines, s.expect_strings_after_json, s.schema_type) == (
        True, True, True, "llama3.1")


def test_argument_regex_group_names_and_replace_function_results():
    s = ToolSettings(response_regex=(r"(?P<name>\w+)\((?P<arguments>[^)]*)\)",),
                     argument_regex=(r"(?P<k>\w+)=(?P<v>\w+)",), argument_regex_key="k", argument_regex_value="v",
                     replace_function_results=((r"CALL:\s*", ""),))
    assert parse_with_regex_rules("CALL: lookup(city=Rome)", s)[1] == [("lookup", '{"city":"Rome"}')]


CHOICES = [
    None, "", "auto", "none", "required", "bogus",
    {"type": "function", "function": {"name": "get_weather"}},
    {"type": "function", "name": "get_weather"},  # the Responses API's flat shape
    {"function": {"name": "get_weather"}},  # no type: LocalAI's prompt ignores it
    {"type": "function", "function": {"name": "nope"}},
    {"type": "function"},
    json.dumps({"type": "function", "function": {"name": "get_weather"}}),  # LocalAI's JSON-string form
    "{not json",
]
FUNCTION_CALLS = [None, "none", "auto", {"name": "get_weather"}, {"name": 5}]


@pytest.mark.parametrize("tools_field", ["tools", "functions"])
@pytest.mark.parametrize("tool_choice", CHOICES)
@pytest.mark.parametrize("function_call", FUNCTION_CALLS)
def test_the_checked_choice_is_the_one_the_prompt_is_built_with(tools_field, tool_choice, function_call):
    # The prompt (compat.prompt, LocalAI's rules) filters the functions by function_mode; the
    # grammar follows tool_request. Wherever a request is accepted they must agree.
    from compat.chat_request import function_mode

    body: dict = {tools_field: [WEATHER] if tools_field == "tools" else [WEATHER["function"]]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if function_call is not None:
        body["function_call"] = function_call
    try:
        r = tool_request(body)
    except RequestError as exc:
        assert "tool_choice" in str(exc) or "function_call" in str(exc)
        return
    assert r is not None
    prompt_side = function_mode(body)
    assert r.name == prompt_side.name
    assert r.mode == ("named" if prompt_side.name else prompt_side.mode or "auto")


def test_a_named_choice_in_function_call_or_a_json_string_is_honoured():
    assert tool_request({"tools": [WEATHER], "function_call": {"name": "get_weather"}}).mode == "named"
    as_string = json.dumps({"type": "function", "function": {"name": "get_weather"}})
    assert tool_request({"tools": [WEATHER], "tool_choice": as_string}).name == "get_weather"
    # tool_choice overrides function_call unless it is empty or "auto" (LocalAI's order).
    assert tool_request({"functions": [WEATHER["function"]], "tool_choice": "none",
                         "function_call": {"name": "get_weather"}}).mode == "none"
    with pytest.raises(RequestError, match="tool_choice must be"):
        tool_request({"tools": [WEATHER], "tool_choice": {"function": {"name": "get_weather"}}})
    with pytest.raises(RequestError, match="function_call names the function 'nope'"):
        tool_request({"tools": [WEATHER], "function_call": {"name": "nope"}})
    with pytest.raises(RequestError, match="function_call asks for a tool call, but the request has no tools"):
        tool_request({"function_call": {"name": "get_weather"}})
