"""Behaviour the Go oracle cannot record: LocalAI's missingkey default, Go >= 1.22/1.23 syntax, sprig `get`,
API contract (errors, thread safety, speed). Expectations come from the Go reference notes."""

from __future__ import annotations

import threading
import time

import pytest

from compat.gotemplate import ExecError, ParseError, Template, TemplateError, parse


def render(text: str, data=None) -> str:
    return parse(text).execute({} if data is None else data)


# --- missing map keys (LocalAI parses with default options: missingkey=invalid) ---------------

def test_missing_key_prints_no_value():
    assert render("[{{.nokey}}]", {"a": 1}) == "[<no value>]"


def test_field_of_missing_key_is_no_value_not_error():
    assert render("{{.nokey.sub.deeper}}", {}) == "<no value>"


def test_missing_key_is_false_and_compares_false():
    d = {"Metadata": {"k": "v"}}
    assert render("{{if .nokey}}y{{else}}n{{end}}", d) == "n"
    assert render('{{eq .nokey "x"}} {{ne .Metadata.nokey "x"}}', d) == "false true"
    assert render('{{.Metadata.k}}|{{.Metadata.nokey}}', d) == "v|<no value>"


def test_missing_key_as_typed_argument_is_invalid_value():
    with pytest.raises(ExecError) as ei:
        render("{{upper .nokey}}", {})
    assert str(ei.value) == 'template: prompt:1:8: executing "prompt" at <.nokey>: invalid value; expected string'


def test_missing_key_through_interface_params():
    assert render('{{default "d" .nokey}} {{toJson .nokey}} {{print .nokey}} {{empty .nokey}}', {}) == "d null <nil> true"


def test_range_over_missing_key_runs_zero_times():
    assert render("{{range .nokey}}x{{else}}none{{end}}", {}) == "none"


def test_missing_key_in_parenthesized_chain():
    assert render("{{(.nokey).x}}", {}) == "<no value>"


# --- Go >= 1.22 / 1.23 (LocalAI builds with a current Go) -----------------------------------

def test_range_over_int():
    assert render("{{range 3}}{{.}}{{end}}|{{range $i := 2}}{{$i}}{{end}}|{{range 0}}x{{else}}e{{end}}") == "012|01|e"


def test_else_with():
    t = "{{with .a}}A{{.}}{{else with .b}}B{{.}}{{else}}none{{end}}"
    assert render(t, {"a": "", "b": "x"}) == "Bx"
    assert render(t, {"a": "y", "b": "x"}) == "Ay"
    assert render(t, {"a": "", "b": ""}) == "none"


def test_json_short_escapes_for_backspace_and_formfeed():
    # Go >= 1.22 encoding/json writes \b and \f (the 1.20 oracle wrote \u0008 / \u000c).
    assert render('{{toJson "a\\bb\\fc"}}') == '"a\\bb\\fc"'


# --- sprig functions shadowed in the oracle (helmfile's `get`) ---------------------------------

def test_sprig_get():
    d = {"m": {"a": 1}}
    assert render('{{get .m "a"}}|{{get .m "zz"}}|', d) == "1||"


def test_sprig_slice_shadows_builtin_slice():
    assert render("{{slice (list 1 2 3) 1 2}}") == "[2]"
    with pytest.raises(ExecError, match="list should be type of slice or array but string"):
        render('{{slice "abc" 1}}')


def test_sprig_misc():
    assert render('{{keys (dict "a" 1) | first}} {{typeOf "x"}} {{kindOf (list)}} {{until 3}} {{cat "a" nil 1}}') == (
        "a string slice [0 1 2] a 1"
    )
    assert render('{{regexFindAll "[0-9]" "a1b2c3" 2}} {{regexSplit "," "a,b,c" -1}} {{splitn "," 2 "a,b,c"}}') == (
        "[1 2] [a b c] map[_0:a _1:b,c]"
    )
    with pytest.raises(ExecError, match="error calling fail: boom"):
        render('{{fail "boom"}}')


# --- errors and API ------------------------------------------------------------------------

def test_parse_error_types_and_names():
    with pytest.raises(ParseError) as ei:
        parse("a\n{{if}}", name="chat")
    assert str(ei.value) == "template: chat:2: missing value for if"
    assert ei.value.line == 2
    assert isinstance(ei.value, TemplateError)


def test_exec_error_uses_template_name():
    t = parse("{{.n.x}}", name="llama3")
    with pytest.raises(ExecError) as ei:
        t.execute({"n": None})
    assert str(ei.value).startswith('template: llama3:1:4: executing "llama3" at <.n.x>')


def test_parse_returns_reusable_template():
    t = parse("{{.a}}-{{.b}}")
    assert isinstance(t, Template)
    assert t.execute({"a": 1, "b": 2}) == "1-2"
    assert t.execute({"a": "x"}) == "x-<no value>"


def test_template_is_thread_safe():
    t = parse("{{range $i, $e := .l}}{{$x := print $e $i}}{{$x}},{{end}}")
    errors = []

    def work(k):
        try:
            for _ in range(200):
                data = {"l": [f"t{k}"] * 3}
                assert t.execute(data) == f"t{k}0,t{k}1,t{k}2,"
        except AssertionError as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_variables_do_not_leak_between_executions():
    t = parse('{{$x := ""}}{{range .l}}{{$x = print $x .}}{{end}}{{$x}}')
    assert t.execute({"l": ["a"]}) == "a"
    assert t.execute({"l": ["b"]}) == "b"


def test_deep_template_recursion_is_an_error_not_a_crash():
    with pytest.raises(ExecError, match="exceeded maximum template depth"):
        render('{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}')


CHAT_MESSAGE = (
    "<|im_start|>{{if eq .RoleName \"assistant\"}}assistant{{else if eq .RoleName \"system\"}}system"
    "{{else if eq .RoleName \"tool\"}}tool{{else if eq .RoleName \"user\"}}user{{end}}\n"
    "{{- if .FunctionCall }}\n<tool_call>\n{{- else if eq .RoleName \"tool\" }}\n<tool_response>\n{{- end }}\n"
    "{{- if .Content}}\n{{.Content }}\n{{- end }}\n{{- if .FunctionCall}}\n{{toJson .FunctionCall}}\n{{- end }}\n"
    "{{- if .FunctionCall }}\n</tool_call>\n{{- else if eq .RoleName \"tool\" }}\n</tool_response>\n{{- end }}<|im_end|>"
)


def test_render_speed_typical_chat_message():
    t = parse(CHAT_MESSAGE)
    data = {"RoleName": "user", "Content": "Hello there, how are you?", "FunctionCall": None}
    assert t.execute(data) == "<|im_start|>user\nHello there, how are you?<|im_end|>"
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        t.execute(data)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 1e-3, f"{per_call * 1e6:.0f} us per render"


def test_range_assignment_form_sets_index_then_element():
    # Go >= 1.21 semantics (the 1.20 oracle swapped them): {{range $i, $e = ...}} assigns existing vars.
    assert render("{{$i := 0}}{{$e := 0}}{{range $i, $e = .l}}{{end}}{{$i}}{{$e}}", {"l": ["a", "b", "c"]}) == "2c"
    assert render("{{$e := 0}}{{range $e = .l}}{{end}}{{$e}}", {"l": ["a", "b"]}) == "b"


def test_multiline_comment_counts_lines_in_errors():
    # Go 1.20 (the oracle) forgot the newlines inside comments; we count them.
    with pytest.raises(ParseError, match="prompt:3: function \"nosuch\" not defined"):
        parse("{{/* a\nb */}}\n{{nosuch}}")


def test_now_and_date_functions():
    import datetime as dt

    year = str(dt.datetime.now().year)
    assert render('{{typeOf now}} {{now | date "2006"}}') == f"time.Time {year}"
    assert render('{{toJson now}}').startswith(f'"{year}-')
    tz = dt.timezone(dt.timedelta(hours=5, minutes=30))
    when = dt.datetime(2023, 11, 15, 3, 43, 20, 123000, tzinfo=tz)
    assert render('{{dateInZone "Jan _2 15:04:05.000 -07:00" .t "UTC"}} {{unixEpoch .t}}', {"t": when}) == (
        "Nov 14 22:13:20.123 +00:00 1700000000"
    )
    assert render("{{.t}}", {"t": when}) == "2023-11-15 03:43:20.123 +0530 +0530"


def test_pathologically_nested_template_is_a_parse_error():
    with pytest.raises(ParseError, match="max depth exceeded"):
        parse("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}")


def test_non_string_text_is_rejected_early():
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]


def test_nil_data():
    assert parse("{{.}}|{{.X}}|{{.X.Y}}|{{$}}|{{if .}}t{{else}}f{{end}}").execute(None) == (
        "<no value>|<no value>|<no value>|<no value>|f"
    )


def test_sprig_env_reads_process_environment(monkeypatch):
    monkeypatch.setenv("GOTEMPLATE_TEST_VAR", "v1")
    assert render('{{env "GOTEMPLATE_TEST_VAR"}}|{{env "GOTEMPLATE_UNSET_VAR"}}|{{expandenv "x=$GOTEMPLATE_TEST_VAR ${GOTEMPLATE_TEST_VAR}"}}') == (
        "v1||x=v1 v1"
    )


def test_go_json_value_makes_numbers_float64():
    from compat.gotemplate import go_json_value

    data = go_json_value({"n": 1234567, "l": [1, True, None, {"x": 2}], "s": "a"})
    assert data == {"n": 1234567.0, "l": [1.0, True, None, {"x": 2.0}], "s": "a"}
    assert type(data["l"][1]) is bool
    assert render("{{.n}} {{toJson .}} {{printf \"%T\" .n}}", data) == (
        '1.234567e+06 {"l":[1,true,null,{"x":2}],"n":1234567,"s":"a"} float64'
    )
