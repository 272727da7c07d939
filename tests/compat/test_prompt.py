"""Unit tests for compat.prompt / compat.jinja_chat / compat.prompt_cmd beyond the Go goldens."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import gguf
import pytest

import compat.prompt_templates as templates_mod
from compat import prompt_cmd
from compat.config import FunctionsConfig, ModelConfig, PredictionOptions, TemplateConfig
from compat.jinja_chat import ChatTemplateError, TokenizerTemplate, render_chat_template
from compat.prompt import (
    PromptRequestError, build_chat_prompt, build_completion_prompt, decode_message_content,
    uses_tokenizer_template,
)

MSGS = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
SIMPLE_TT = TokenizerTemplate(
    "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}", "<s>", "</s>")


def cfg(**template) -> ModelConfig:
    return ModelConfig(name="m", parameters=PredictionOptions(model="m.gguf"), template=TemplateConfig(**template))


def write_gguf(path: Path, chat_template: str | None) -> None:
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", "a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- tokenizer (GGUF Jinja) path ------------------------------------------------------------------

def test_no_go_template_uses_tokenizer_template(tmp_path):
    r = build_chat_prompt(cfg(), tmp_path, {"messages": MSGS}, tokenizer_template=SIMPLE_TT)
    assert (r.text, r.source) == ("<s><system>S</s><user>U</s><assistant>", "tokenizer")


def test_go_template_wins_over_tokenizer_template_unless_flag(tmp_path):
    c = cfg(chat="[{{.Input}}]")
    assert not uses_tokenizer_template(c, SIMPLE_TT)
    assert build_chat_prompt(c, tmp_path, {"messages": MSGS}, tokenizer_template=SIMPLE_TT).text == "[S\nU]"
    c = cfg(chat="[{{.Input}}]", use_tokenizer_template=True)
    assert build_chat_prompt(c, tmp_path, {"messages": MSGS}, tokenizer_template=SIMPLE_TT).source == "tokenizer"


def test_use_tokenizer_template_without_one_joins_raw_with_warning(tmp_path):
    r = build_chat_prompt(cfg(use_tokenizer_template=True), tmp_path, {"messages": MSGS})
    assert r.text == "S\nU" and r.source == "raw"
    assert any("tokenizer.chat_template" in w for w in r.warnings)


def test_jinja_environment_like_llama_cpp_python():
    tt = TokenizerTemplate(
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}\n"
        "  {{ m.content | tojson }}\n{% endfor %}{{ tools | tojson }}|{{ strftime_now('%Y') | length }}", "", "")
    out = render_chat_template(tt, [{"role": "user", "content": "<é>"}, {"role": "user", "content": "b"},
                                    {"role": "user", "content": "c"}],
                               tools=[{"z": 1, "a": 2}])
    # trim_blocks + lstrip_blocks, HF tojson (no HTML escaping, insertion order), loopcontrols.
    assert out == '  "<é>"\n  "b"\n[{"z": 1, "a": 2}]|4'


def test_raise_exception_and_sandbox():
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        render_chat_template(TokenizerTemplate("{{ raise_exception('roles must alternate') }}"), [])
    with pytest.raises(ChatTemplateError):
        render_chat_template(TokenizerTemplate("{{ messages.append(1) }}"), [])
    with pytest.raises(ChatTemplateError, match="parse"):
        render_chat_template(TokenizerTemplate("{% if %}"), [])


def test_array_content_passes_through_to_jinja(tmp_path):
    tt = TokenizerTemplate("{% for m in messages %}{{ m.content[0].text }}{% endfor %}")
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert build_chat_prompt(cfg(), tmp_path, {"messages": msgs}, tokenizer_template=tt).text == "hi"


# --- Go template path details ---------------------------------------------------------------------

def test_sources_and_warnings(tmp_path):
    r = build_chat_prompt(cfg(chat_message="{{.RoleName}}:{{.Content}}", chat="<{{.Input}}>"), tmp_path, {"messages": MSGS})
    assert (r.text, r.source, r.warnings) == ("<system:S\nuser:U>", "template.chat_message+chat", [])
    r = build_chat_prompt(cfg(chat_message="{{.RoleName}}:{{.Content}}"), tmp_path, {"messages": MSGS})
    assert (r.text, r.source) == ("system:S\nuser:U", "template.chat_message")
    r = build_chat_prompt(cfg(chat="{{.Input}} {{.Nope}}"), tmp_path, {"messages": MSGS})
    assert (r.text, r.source) == ("S\nU", "raw")
    assert r.warnings and "template.chat failed" in r.warnings[0] and "untemplated" in r.warnings[0]
    r = build_chat_prompt(cfg(chat_message="{{if eq .RoleName \"user\"}}{{.Content}}{{end}}", chat="{{.Input}}"),
                          tmp_path, {"messages": MSGS})
    assert r.text == "U" and any("drops the message" in w for w in r.warnings)


def test_function_source_and_answer_rule(tmp_path):
    c = cfg(chat="C", function="{{range .Functions}}{{.Name}},{{end}}")
    req = {"messages": MSGS, "tools": [{"type": "function", "function": {"name": "f"}}]}
    r = build_chat_prompt(c, tmp_path, req)
    assert (r.text, r.source) == ("f,answer,", "template.function")
    c.function = FunctionsConfig(disable_no_action=True)
    assert build_chat_prompt(c, tmp_path, req).text == "f,"
    strict = {"messages": MSGS, "functions": [{"name": "g", "strict": True}]}
    c.function.grammar.disable = True
    assert build_chat_prompt(c, tmp_path, strict).text == "g,"
    named = cfg(chat="C", function="{{range .Functions}}{{.Name}}={{.Description}};{{end}}")
    named.function = FunctionsConfig(no_action_function_name="reply", no_action_description_name="say it")
    assert build_chat_prompt(named, tmp_path, req).text == "f=;reply=say it;"


def test_implicit_model_tmpl_and_completion(tmp_path):
    (tmp_path / "m.gguf.tmpl").write_text("IMPLICIT {{.Input}}")
    r = build_completion_prompt(cfg(chat="x"), tmp_path, "p", {})
    assert (r.text, r.source) == ("IMPLICIT p", "m.gguf.tmpl")
    r = build_completion_prompt(cfg(completion="C {{.Input}}"), tmp_path, "p", {})
    assert (r.text, r.source) == ("C p", "template.completion")
    r = build_completion_prompt(cfg(completion="{{.Bad}}"), tmp_path, "p", {})
    assert r.text == "p" and r.source == "raw" and r.warnings


def test_tmpl_file_read_byte_for_byte(tmp_path):
    (tmp_path / "t.tmpl").write_bytes(b"a\r\n{{.Input}}\r\n")
    assert build_completion_prompt(cfg(completion="t"), tmp_path, "x", {}).text == "a\r\nx\r\n"


def test_template_file_outside_path(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (tmp_path / "evil.tmpl").write_text("EVIL")
    r = build_completion_prompt(cfg(completion="../evil"), models, "x", {})
    assert r.text == "x" and "outside path" in r.warnings[0]


def test_parse_once_under_threads(tmp_path, monkeypatch):
    calls = []
    real = templates_mod.parse

    def counting(text, name="prompt"):
        calls.append(text)
        return real(text, name=name)

    monkeypatch.setattr(templates_mod, "parse", counting)
    monkeypatch.setattr(templates_mod.template_cache, "_parsed", {})
    c = cfg(chat_message="{{.Content}}!", chat="[{{.Input}}]")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        build_chat_prompt(c, tmp_path, {"messages": MSGS}).text)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["[S!\nU!]"] * 8
    assert sorted(calls) == sorted(["{{.Content}}!", "[{{.Input}}]"])


def test_bad_requests(tmp_path):
    with pytest.raises(PromptRequestError, match="messages"):
        build_chat_prompt(cfg(chat="x"), tmp_path, {"messages": "hi"})
    with pytest.raises(PromptRequestError, match="metadata"):
        build_chat_prompt(cfg(chat="x"), tmp_path, {"messages": MSGS, "metadata": {"a": 1}})
    with pytest.raises(PromptRequestError, match="tool_calls"):
        build_chat_prompt(cfg(chat="x"), tmp_path, {"messages": [{"role": "assistant", "tool_calls": {}}]})


def test_decode_message_content():
    assert decode_message_content("a", multimodal="") == "a"
    assert decode_message_content(None, multimodal="") == ""
    assert decode_message_content(3, multimodal="") == ""
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "file:///x"}},
             {"type": "input_audio", "input_audio": {"data": "AAAA"}}, {"type": "text", "text": "b"}]
    # file:// is not something LocalAI can fetch: the image part is skipped; input_audio counts.
    assert decode_message_content(parts, multimodal="") == "<__media__>ab"


# --- llamaslots prompt ------------------------------------------------------------------------------

def run(argv, capfdbinary):
    rc = prompt_cmd.main([str(a) for a in argv])
    out, err = capfdbinary.readouterr()
    return rc, out, err.decode()


@pytest.fixture
def models(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    write_gguf(d / "tok.gguf", SIMPLE_TT.template)
    write_gguf(d / "bare.gguf", None)
    (d / "cfg.yaml").write_text(
        "- name: tok\n  parameters:\n    model: tok.gguf\n"
        "- name: flagged\n  parameters:\n    model: tok.gguf\n  template:\n    use_tokenizer_template: true\n"
        "    chat: ignored\n"
        "- name: go\n  parameters:\n    model: tok.gguf\n  template:\n    chat: '{{.Input}}>'\n"
        "    completion: 'C:{{.Input}}'\n")
    return d


def test_cmd_tokenizer_template_from_gguf(models, capfdbinary, tmp_path):
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps(MSGS))
    for model in ("tok", "flagged", "tok.gguf"):
        rc, out, err = run(["--models-path", models, "--model", model, "--messages", msgs], capfdbinary)
        assert (rc, out) == (0, b"<s><system>S</s><user>U</s><assistant>"), (model, err)
    rc, out, _ = run(["--models-path", models, "--model", "bare.gguf", "--messages", msgs], capfdbinary)
    assert (rc, out) == (0, b"S\nU")
    rc, out, _ = run(["--models-path", models, "--model", "go", "--messages", msgs], capfdbinary)
    assert (rc, out) == (0, b"S\nU>")


def test_cmd_prompt_and_request_forms(models, capfdbinary, tmp_path):
    rc, out, _ = run(["--models-path", models, "--model", "go", "--prompt", "hi\n"], capfdbinary)
    assert (rc, out) == (0, b"C:hi\n")
    req = tmp_path / "r.json"
    req.write_text(json.dumps({"model": "go", "prompt": ["a", "b"], "max_tokenz": 3}))
    rc, out, err = run(["--models-path", models, "--model", "go", "--request", req], capfdbinary)
    assert (rc, out) == (0, b"C:a\nC:b")
    assert "'max_tokenz'" in err and "'max_tokens'" in err and "2 prompts" in err


def test_cmd_errors(models, capfdbinary, tmp_path):
    rc, _, err = run(["--models-path", models, "--model", "nope", "--prompt", "x"], capfdbinary)
    assert rc == 1 and "'nope' not found" in err and "go" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc, _, err = run(["--models-path", models, "--model", "go", "--request", bad], capfdbinary)
    assert rc == 2 and "error:" in err
    bad.write_text(json.dumps({"model": "go"}))
    rc, _, err = run(["--models-path", models, "--model", "go", "--request", bad], capfdbinary)
    assert rc == 2 and "neither" in err


# --- Go struct semantics the py-go-template goldens cannot show (it only has JSON maps) ------------

def test_struct_data_semantics(tmp_path):
    tools = {"messages": [{"role": "user", "content": "q"}],
             "tools": [{"type": "function", "function": {"name": "f"}}], "metadata": {"k": "v"}}
    c = cfg(chat="C", function='{{toJson .Functions}}|{{.Metadata.k}}|{{.Metadata.nokey}}')
    c.function = FunctionsConfig(disable_no_action=True)
    r = build_chat_prompt(c, tmp_path, tools)
    # Struct fields in declaration order under their json tags; a missing map key prints <no value>.
    assert r.text == '[{"name":"f","description":"","strict":false,"parameters":null}]|v|<no value>'
    c = cfg(chat_message='{{if eq .MessageIndex 0}}first {{end}}{{toJson .FunctionCall}}')
    msgs = [{"role": "user", "content": "a"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "n", "arguments": "{}"}}]}]
    r = build_chat_prompt(c, tmp_path, {"messages": msgs})
    assert r.text == 'first null\n[{"index":0,"id":"c","type":"function","function":{"name":"n","arguments":"{}"}}]'
    r = build_chat_prompt(cfg(chat_message="{{.Content}}{{.Nope}}", chat="{{.Input}}"), tmp_path, {"messages": msgs[:1]})
    assert r.text == "a" and "can't evaluate field Nope" in r.warnings[0]


def test_metadata_keys_deleted_only_for_chat(tmp_path):
    md = {"metadata": {"localai_assistant": "1", "mcp_prompt": "", "mcp_servers": "x", "k": "v"}}
    tmpl = "{{range $k, $v := .Metadata}}{{$k}}={{$v}};{{end}}"
    chat_r = build_chat_prompt(cfg(chat=tmpl), tmp_path, {"messages": MSGS, **md})
    assert chat_r.text == "k=v;mcp_prompt=;"
    comp = build_completion_prompt(cfg(completion=tmpl), tmp_path, "p", md)
    assert comp.text == "k=v;localai_assistant=1;mcp_prompt=;mcp_servers=x;"


def test_per_message_template_under_chat_gets_a_hint(tmp_path):
    r = build_chat_prompt(cfg(chat='{{if eq .RoleName "user"}}{{.Content}}{{end}}'), tmp_path, {"messages": MSGS})
    assert r.text == "S\nU" and "template.chat_message" in r.warnings[0] and ".RoleName" in r.warnings[0]
