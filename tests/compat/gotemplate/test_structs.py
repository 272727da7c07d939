"""Struct data (dataclasses as Go structs): field errors, zero values, typed nils, json tags in toJson.

The JSON-fed Go oracle cannot express structs, so expectations here follow Go's reflect rules as
documented in /work/shared/reference/go-template.md (LocalAI's PromptTemplateData & co.).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from compat.gotemplate import ExecError, go_field, parse
from compat.prompt_data import ChatMessageTemplateData, Function, FunctionCall, PromptTemplateData, ToolCall


@dataclass
class Tagged:
    Keep: str = field(default="k", metadata=go_field(json="keep"))
    Skip: str = field(default="s", metadata=go_field(json="-"))
    Dash: str = field(default="d", metadata=go_field(json="-,"))
    Untagged: int = 7
    Empty: str = field(default="", metadata=go_field(json="empty,omitempty"))
    EmptyList: list | None = field(default=None, metadata=go_field(json="el,omitempty"))
    Html: str = field(default="<&>", metadata=go_field(json="html"))


def render(text: str, data) -> str:
    return parse(text).execute(data)


def test_unknown_struct_field_is_an_error():
    with pytest.raises(ExecError) as ei:
        render("x{{.Messages}}", PromptTemplateData())
    assert str(ei.value) == (
        'template: prompt:1:3: executing "prompt" at <.Messages>: '
        "can't evaluate field Messages in type templates.PromptTemplateData"
    )


def test_field_of_a_chat_template_used_in_the_wrong_data_is_an_error():
    with pytest.raises(ExecError, match="can't evaluate field RoleName in type templates.PromptTemplateData"):
        render("{{if eq .RoleName \"user\"}}u{{end}}", PromptTemplateData())


def test_zero_values_and_nil_interface_field():
    out = render("[{{.Content}}]|{{.MessageIndex}}|{{.LastMessage}}|{{.FunctionCall}}", ChatMessageTemplateData())
    assert out == "[]|0|false|<no value>"


def test_nil_interface_field_chain_is_nil_pointer_error():
    with pytest.raises(ExecError) as ei:
        render("{{.FunctionCall.Name}}", ChatMessageTemplateData())
    assert str(ei.value).endswith("at <.FunctionCall.Name>: nil pointer evaluating interface {}.Name")


def test_field_on_string_field_names_the_concrete_type():
    with pytest.raises(ExecError) as ei:
        render("{{.Input.X}}", PromptTemplateData(Input="hi"))
    assert str(ei.value).endswith("can't evaluate field X in type string")


def test_struct_field_with_arguments_is_an_error():
    with pytest.raises(ExecError, match="Input has arguments but cannot be invoked as function"):
        render("{{.Input 1}}", PromptTemplateData())


def test_nil_slice_field_behaves_like_go_nil_slice():
    d = PromptTemplateData()
    assert render("{{if .Functions}}y{{else}}n{{end}}", d) == "n"
    assert render("{{.Functions}}|{{len .Functions}}|{{toJson .Functions}}", d) == "[]|0|null"
    assert render("{{range .Functions}}x{{else}}none{{end}}", d) == "none"
    assert render("{{.Metadata}}|{{.Metadata.k}}|{{toJson .Metadata}}", d) == "map[]|<no value>|null"


def test_functions_toJson_uses_json_tags_in_declaration_order():
    d = PromptTemplateData(Functions=[Function(Name="get", Description="a <b> & c", Parameters={"z": 1, "a": [True]})])
    out = render("{{range .Functions}}{{.Name}}:{{toJson .}}{{end}}", d)
    assert out == 'get:{"name":"get","description":"a \\u003cb\\u003e \\u0026 c","strict":false,"parameters":{"a":[true],"z":1}}'
    assert render("{{toJson (index .Functions 0)}}", PromptTemplateData(Functions=[Function()])) == (
        '{"name":"","description":"","strict":false,"parameters":null}'
    )


def test_json_tag_options_dash_omitempty_untagged():
    assert render("{{toJson .}}", Tagged()) == '{"keep":"k","-":"d","Untagged":7,"html":"\\u003c\\u0026\\u003e"}'
    assert render("{{toRawJson .}}", Tagged(Empty="e", EmptyList=[1])) == (
        '{"keep":"k","-":"d","Untagged":7,"empty":"e","el":[1],"html":"<&>"}'
    )
    assert render("{{toPrettyJson .}}", Tagged()) == (
        '{\n  "keep": "k",\n  "-": "d",\n  "Untagged": 7,\n  "html": "\\u003c\\u0026\\u003e"\n}'
    )


def test_tool_calls_range_and_nested_struct_json():
    calls = [ToolCall(Index=0, ID="c1", Type="function", FunctionCall=FunctionCall(Name="f", Arguments='{"a":1}')),
             ToolCall(Index=1, ID="c2", Type="function", FunctionCall=FunctionCall(Arguments="{}"))]
    d = ChatMessageTemplateData(RoleName="assistant", FunctionCall=calls)
    assert render("{{range .FunctionCall}}[{{.FunctionCall.Name}}]{{end}}", d) == "[f][]"
    assert render("{{toJson .FunctionCall}}", d) == (
        '[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"a\\":1}"}},'
        '{"index":1,"id":"c2","type":"function","function":{"arguments":"{}"}}]'
    )
    assert render("{{if .FunctionCall}}call{{end}}", d) == "call"


def test_function_call_as_map_sorted_keys():
    d = ChatMessageTemplateData(FunctionCall={"name": "f", "arguments": "x"})
    assert render("{{toJson .FunctionCall}} {{.FunctionCall.name}} {{.FunctionCall.nokey}}", d) == (
        '{"arguments":"x","name":"f"} f <no value>'
    )


def test_struct_printing_and_truthiness():
    fc = FunctionCall(Name="n", Arguments="a")
    assert render("{{.}}", fc) == "{n a}"
    assert render('{{printf "%+v|%v|%T" . . .}}', fc) == "{Name:n Arguments:a}|{n a}|schema.FunctionCall"
    assert render("{{if .}}t{{end}}", FunctionCall()) == "t"
    # five empty strings, then 0, false, nil interface, false
    assert render("{{.}}", ChatMessageTemplateData()) == "{" + " " * 5 + "0 false <nil> false}"


def test_int_fields_compare_as_go_ints():
    d = ChatMessageTemplateData(MessageIndex=0)
    assert render("{{if eq .MessageIndex 0}}first{{end}}", d) == "first"
    with pytest.raises(ExecError, match="incompatible types for comparison"):
        render("{{eq .MessageIndex 0.0}}", d)
    assert render("{{add1 .MessageIndex}} {{index (list 5 6) .MessageIndex}}", d) == "1 5"


def test_llama2_system_prompt_replaces_content():
    tmpl = parse("{{if .SystemPrompt}}[INST] <<SYS>>\n{{.SystemPrompt}}\n<</SYS>>\n\n{{.Content}} [/INST]"
                 "{{else}}{{.Content}}{{end}}")
    assert tmpl.execute(ChatMessageTemplateData(SystemPrompt="sys", Content="q")) == "[INST] <<SYS>>\nsys\n<</SYS>>\n\nq [/INST]"
    assert tmpl.execute(ChatMessageTemplateData(Content="q")) == "q"


def test_gallery_function_template_on_structs():
    text = (
        "{{$tools := \"\"}}{{range .Functions}}{{$tools = print $tools .Name \" \"}}{{end}}"
        "{{- range .Functions}}\n{'name': '{{.Name}}', 'parameters': {{toJson .Parameters}}}{{end}}\n"
        "{{- range $key, $val := (index (index .Functions 0).Parameters \"properties\")}}\n{{$key}}={{$val.type}}{{end}}\n"
        "tools: {{$tools}}"
    )
    fns = [Function(Name="a", Parameters={"properties": {"q": {"type": "string"}}}), Function(Name="b")]
    assert render(text, PromptTemplateData(Functions=fns)) == (
        "\n{'name': 'a', 'parameters': {\"properties\":{\"q\":{\"type\":\"string\"}}}}"
        "\n{'name': 'b', 'parameters': null}\nq=string\ntools: a b "
    )
