#!/usr/bin/env python3
"""Dev-only: write tests/compat/prompt_goldens/ with expected prompts rendered by real Go text/template.

Not run in CI. Needs the `py-go-template` wheel (Go text/template + sprig through ctypes). Its
render() exits the process on a template error, so every render runs in a subprocess.

Each template step is rendered by Go; the steps are put together by LocalAI's prompt rules
(/work/shared/reference/localai-prompt-rules.md), written here on their own, without importing
`compat`, so the goldens check the implementation rather than repeat it.

Where py-go-template differs from LocalAI, the cases are written around it:
- data reaches Go as JSON maps, and it renders with missingkey=error. A missing root key errors,
  as an unknown struct field does in LocalAI, but a missing key in a map (e.g. .Metadata) errors
  where LocalAI prints `<no value>`: no case reads a missing map key;
- JSON numbers are float64: no case compares an int field with `eq`;
- maps print with sorted keys: no case runs toJson on a whole Function or ToolCall struct.

Usage: python tools/gen_prompt_goldens.py [--check]
"""
from __future__ import annotations

import argparse
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "compat" / "prompt_goldens"

RUNNER = r"""
import json, sys
from pathlib import Path
import go_template
out = go_template.render(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")))
sys.stdout.buffer.write(out)
"""


def go_render(text: str, data: dict) -> tuple[bool, str]:
    """(ok, output or error message) from real Go text/template + sprig."""
    with tempfile.TemporaryDirectory() as d:
        t = Path(d) / "prompt.tmpl"
        t.write_bytes(text.encode("utf-8"))
        v = Path(d) / "values.json"
        v.write_text(json.dumps(data), encoding="utf-8")
        p = subprocess.run([sys.executable, "-c", RUNNER, str(t), str(v)], capture_output=True)
    if p.returncode != 0:
        return False, (p.stdout + p.stderr).decode("utf-8", "replace")
    return True, p.stdout.decode("utf-8")


# --- LocalAI's rules, written plainly ----------------------------------------------------------

def go_json(v, struct_order: bool = False) -> str:
    """encoding/json.Marshal: compact, sorted map keys, <>& and U+2028/9 escaped."""
    s = json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=not struct_order)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


class OutsidePath(Exception):
    pass


def template_text(models: Path, value: str) -> str:
    base = os.path.abspath(models)
    cleaned = posixpath.normpath(posixpath.join(base, value + ".tmpl"))
    p = cleaned
    inside = False
    while p != "/":
        p = posixpath.dirname(p)
        if p == base:
            inside = True
            break
    if not inside:
        raise OutsidePath("template file outside path")
    if os.path.exists(cleaned):
        return Path(cleaned).read_bytes().decode("utf-8")
    return value


def evaluate(models: Path, value: str, data: dict) -> tuple[bool, str]:
    try:
        text = template_text(models, value)
    except OutsidePath as e:
        return False, str(e)
    return go_render(text, data)


DEFAULT_MM = ("{{ range .Audio }}<__media__>{{end}}{{ range .Images }}<__media__>{{end}}"
              "{{ range .Video }}[vid-{{.ID}}]{{end}}{{.Text}}")


@dataclass
class Outcome:
    prompt: str
    warnings: list[str] = field(default_factory=list)  # substrings llamaslots must print on stderr


def message_text(content, multimodal: str, counts: dict) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    text, n = "", {"img": 0, "vid": 0, "aud": 0}
    for part in content:
        kind = part.get("type")
        if kind == "text":
            text += part.get("text", "")
        elif kind in ("image_url", "image"):
            n["img"] += 1
        elif kind in ("video_url", "video"):
            n["vid"] += 1
        elif kind in ("audio_url", "audio", "input_audio"):
            n["aud"] += 1
    for k in n:
        counts[k] += n[k]
    data = {
        "Images": [{"ID": i + counts["img"] - n["img"]} for i in range(n["img"])],
        "Video": [{"ID": i + counts["vid"] - n["vid"]} for i in range(n["vid"])],
        "Audio": [{"ID": i + counts["aud"] - n["aud"]} for i in range(n["aud"])],
        "Text": text,
    }
    ok, out = go_render(multimodal or DEFAULT_MM, data)
    return out if ok else ""


def prompt_template(models: Path, cfg: dict, kind: str, data: dict, out: Outcome) -> str:
    model = (cfg.get("parameters") or {}).get("model", "")
    value = model if model and os.path.exists(models / f"{model}.tmpl") else ""
    own = (cfg.get("template") or {}).get(kind) or ""
    if own:
        value = own
    if not value:
        return data["Input"]
    ok, text = evaluate(models, value, data)
    if not ok:
        out.warnings.append("failed")
        return data["Input"]
    return text


def go_function(f: dict) -> dict:
    return {"Name": f.get("name", ""), "Description": f.get("description", ""),
            "Strict": bool(f.get("strict", False)), "Parameters": f.get("parameters")}


def chat_prompt(models: Path, cfg: dict, req: dict) -> Outcome:
    out = Outcome("")
    tcfg = cfg.get("template") or {}
    roles = cfg.get("roles") or {}
    system_prompt = cfg.get("system_prompt", "")
    msgs = req["messages"]

    funcs = list(req.get("functions") or []) + [t["function"] for t in req.get("tools") or []]
    choice = req.get("tool_choice", req.get("function_call"))
    mode_none = choice == "none"
    named = choice.get("name") if isinstance(choice, dict) else None
    if isinstance(choice, dict) and choice.get("type") == "function":
        named = choice["function"]["name"]
    use_fn = bool(funcs) and (not mode_none or bool(named))
    fn_cfg = cfg.get("function") or {}
    grammar = bool(cfg.get("grammar"))
    if use_fn and not (fn_cfg.get("grammar") or {}).get("disable"):
        grammar = True
        if not fn_cfg.get("disable_no_action"):
            funcs = funcs + [{"name": "answer",
                              "description": "use this action to answer without performing any action",
                              "parameters": {"properties": {"message": {
                                  "type": "string", "description": "The message to reply the user with"}}}}]
    if named:
        funcs = [f for f in funcs if f.get("name") == named]

    counts = {"img": 0, "vid": 0, "aud": 0}
    suppress = False
    parts = []
    for i, m in enumerate(msgs):
        role = m.get("role", "")
        fc = m.get("function_call")
        tcs = m.get("tool_calls")
        if (fc is not None or tcs is not None) and role == "assistant" and roles.get("assistant_function_call"):
            role = "assistant_function_call"
        r = roles.get(role, "")
        text = message_text(m.get("content"), tcfg.get("multimodal", ""), counts)
        exists = text != ""
        go_tcs = [{"Index": t.get("index", 0), "ID": t.get("id", ""), "Type": t.get("type", ""),
                   "FunctionCall": {"Name": t["function"].get("name", ""),
                                    "Arguments": t["function"].get("arguments", "")}} for t in tcs or []]
        content = ""
        if tcfg.get("chat_message"):
            data = {"SystemPrompt": system_prompt, "Role": r, "RoleName": role,
                    "FunctionName": m.get("name", ""), "Content": text, "MessageIndex": i,
                    "Function": grammar and i == len(msgs) - 1,
                    "FunctionCall": go_tcs if go_tcs else fc, "LastMessage": i == len(msgs) - 1}
            ok, rendered = evaluate(models, tcfg["chat_message"], data)
            if not ok:
                out.warnings.append("template.chat_message failed")
            elif rendered == "":
                continue
            else:
                content = rendered
        if content == "":
            sp = r + " " if r else ""
            if exists:
                content = r + text
            if fc is not None:
                j = go_json(fc)
                content = content + "\n" + sp + j if exists else sp + j
            if tcs is not None:
                ordered = []
                for t in tcs:
                    fn = {}
                    if t["function"].get("name"):
                        fn["name"] = t["function"]["name"]
                    fn["arguments"] = t["function"].get("arguments", "")
                    ordered.append({"index": t.get("index", 0), "id": t.get("id", ""),
                                    "type": t.get("type", ""), "function": fn})
                j = go_json(ordered, struct_order=True)
                content = content + "\n" + sp + j if exists else sp + j
            if exists and role == "system":
                suppress = True
        parts.append(content)
    sep = tcfg.get("join_chat_messages_by_character")
    joined = ("\n" if sep is None else sep).join(parts)

    metadata = dict(req.get("metadata") or {})
    metadata.pop("localai_assistant", None)
    for k in ("mcp_servers", "mcp_prompt", "mcp_prompt_args", "mcp_resources"):
        if metadata.get(k):
            del metadata[k]
    data = {"SystemPrompt": system_prompt, "SuppressSystemPrompt": suppress, "Input": joined,
            "Instruction": "", "Functions": [go_function(f) for f in funcs], "MessageIndex": 0,
            "ReasoningEffort": req.get("reasoning_effort", ""), "Metadata": metadata}
    kind = "function" if tcfg.get("function") and use_fn else "chat"
    out.prompt = prompt_template(models, cfg, kind, data, out)
    return out


def completion_prompt(models: Path, cfg: dict, req: dict) -> Outcome:
    out = Outcome("")
    data = {"SystemPrompt": cfg.get("system_prompt", ""), "SuppressSystemPrompt": False,
            "Input": req["prompt"], "Instruction": "", "Functions": [], "MessageIndex": 0,
            "ReasoningEffort": req.get("reasoning_effort", ""), "Metadata": req.get("metadata") or {}}
    out.prompt = prompt_template(models, cfg, "completion", data, out)
    return out


# --- the cases ----------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    config: str                     # YAML text: a list with the model(s)
    request: dict
    files: dict[str, str] = field(default_factory=dict)   # extra files in the models path
    note: str = ""
    # llamaslots' config check refuses this config at load time (LocalAI accepts it and fails later)
    config_check_rejects: bool = False


SYS_JA = "あなたは優秀な観光ガイドです。"
USER_JA = "日本の都道府県名をランダムに１つ回答してください。その都道府県名の魅力を3つ答えてください。"
CONVO = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi <there> & you"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Count: 1\n2\n3"},
]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Current time", "parameters": {"type": "object", "properties": {}}}}

CHATML_MSG = """<|im_start|>{{if eq .RoleName "assistant"}}assistant{{else if eq .RoleName "system"}}system{{else if eq .RoleName "tool"}}tool{{else if eq .RoleName "user"}}user{{end}}
{{ if .FunctionCall -}}
Function call:
{{ else if eq .RoleName "tool" -}}
Function response:
{{ end -}}
{{ if .Content -}}
{{.Content }}
{{ end -}}
{{ if .FunctionCall -}}
{{toJson .FunctionCall}}
{{ end -}}<|im_end|>"""
CHATML_CHAT = """{{.Input -}}
<|im_start|>assistant"""
CHATML_FUNCTION = """<|im_start|>system
You are a function calling AI model. You are provided with functions to execute. You may call one or more functions to assist with the user query. Don't make assumptions about what values to plug into functions. Here are the available tools:
{{range .Functions}}
{'type': 'function', 'function': {'name': '{{.Name}}', 'description': '{{.Description}}', 'parameters': {{toJson .Parameters}} }}
{{end}}
For each function call return a json object with function name and arguments
<|im_end|>
{{.Input -}}
<|im_start|>assistant"""
LLAMA2_MSG = """{{if eq .RoleName "assistant"}}{{.Content}}{{else}}
[INST]
{{if .SystemPrompt}}{{.SystemPrompt}}{{else if eq .RoleName "system"}}<<SYS>>{{.Content}}<</SYS>>

{{else if .Content}}{{.Content}}{{end}}
[/INST]
{{end}}"""
LLAMA3_MSG = """<|start_header_id|>{{if eq .RoleName "assistant"}}assistant{{else if eq .RoleName "system"}}system{{else if eq .RoleName "tool"}}tool{{else if eq .RoleName "user"}}user{{end}}<|end_header_id|>

{{ if .FunctionCall -}}
Function call:
{{ else if eq .RoleName "tool" -}}
Function response:
{{ end -}}
{{ if .Content -}}
{{.Content -}}
{{ else if .FunctionCall -}}
{{ toJson .FunctionCall -}}
{{ end -}}
<|eot_id|>"""
LLAMA3_CHAT = """<|begin_of_text|>{{.Input }}
<|start_header_id|>assistant<|end_header_id|>
"""
LLAMA3_FUNCTION = """<|start_header_id|>system<|end_header_id|>

You have access to the following functions:
{{range .Functions}}
Use the function '{{.Name}}' to '{{.Description}}'
{{toJson .Parameters}}
{{end}}
Think very carefully before calling functions.
<|eot_id|>{{.Input }}
<|start_header_id|>assistant<|end_header_id|>
"""
VICUNA_CHAT = """{{.SystemPrompt}}

{{.Input}}
ASSISTANT:
"""
ALPACA_CHAT = """Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
{{.Input}}

### Response:
"""
MISTRAL_MSG = """{{if eq .RoleName "user" -}}
[INST] {{.Content }} [/INST]
{{- else if .FunctionCall -}}
[TOOL_CALLS] {{toJson .FunctionCall}} [/TOOL_CALLS]
{{- else if eq .RoleName "tool" -}}
[TOOL_RESULTS] {{.Content}} [/TOOL_RESULTS]
{{- else -}}
{{ .Content -}}
{{ end -}}"""
MISTRAL_FUNCTION = """[AVAILABLE_TOOLS] [{{range .Functions}}{"type": "function", "function": {"name": "{{.Name}}", "description": "{{.Description}}", "parameters": {{toJson .Parameters}} }}{{end}} ] [/AVAILABLE_TOOLS]{{.Input }}"""
HERMES_TOOLS_FUNCTION = """<|im_start|>system
You are a function calling AI model.
<tools>
{{range .Functions}}{"name": "{{.Name}}", "description": "{{.Description}}", "parameters": {{toJson .Parameters}}}
{{end}}</tools>
{{- $tools := "" }}{{ range .Functions }}{{ $tools = print $tools .Name " " }}{{ end }}
Tool names: {{ $tools }}<|im_end|>
{{.Input -}}
<|im_start|>assistant"""


def yaml_model(name: str, body: str) -> str:
    lines = body.strip("\n").split("\n")
    return f"- name: {name}\n" + "\n".join("  " + ln if ln else ln for ln in lines) + "\n"


def block(key: str, text: str, indent: int = 4, chomp: str = "|-") -> str:
    pad = " " * indent
    body = "\n".join(pad + ln if ln else "" for ln in text.split("\n"))
    return f"{' ' * (indent - 2)}{key}: {chomp}\n{body}"


def chat(model: str, messages, **extra) -> dict:
    return {"model": model, "messages": messages, **extra}


def cases() -> list[Case]:
    c: list[Case] = []
    add = c.append

    # The field note's three models (the karakuri-8x7b entry corrected: `chat: -` does not parse).
    seed = """- name: vicuna-13b
  backend: llama-cpp
  context_size: 4095
  parameters:
    model: vicuna-13b-v1.5.Q8_0.gguf
    temperature: 0.7
  template:
    chat: |
      A chat between a human and an assistant.

      ### Human: 
      {{.Input }}
      ### Assistant: 

- name: karakuri-8x7b
  backend: llama-cpp
  parameters:
    model: karakuri-lm-8x7b-chat-v0.1-Q6_K.gguf
  template:
    chat: |-
      [INST] {{.Input}} [/INST]
    completion: |-
      [INST] {{.Input}} [/INST]

- name: karakuri-70b
  backend: llama-cpp
  parameters:
    model: karakuri-lm-70b-chat-v0.1-q4_K_M.gguf
  template:
    chat: |
      {{if eq .RoleName "assistant"}}{{.Content}}{{else}}
      [INST]
      {{if .SystemPrompt}}{{.SystemPrompt}}{{else if eq .RoleName "system"}}<<SYS>>{{.Content}}<</SYS>>

      {{else if .Content}}{{.Content}}{{end}}
      [/INST]
      {{end}}
"""
    ja = [{"role": "system", "content": SYS_JA}, {"role": "user", "content": USER_JA}]
    add(Case("seed_vicuna_13b", seed, {"model": "vicuna-13b", "templature": 0.1, "top_p": 0.1, "messages": ja},
             note="field-note request, trailing spaces after 'Human:' kept by the block scalar"))
    add(Case("seed_karakuri_8x7b_chat", seed, chat("karakuri-8x7b", ja)))
    add(Case("seed_karakuri_8x7b_completion", seed, {"model": "karakuri-8x7b", "prompt": USER_JA}))
    add(Case("seed_karakuri_70b_chat_errors", seed, chat("karakuri-70b", ja),
             note=".RoleName is not a PromptTemplateData field: the chat template always errors"))
    add(Case("seed_karakuri_70b_as_chat_message",
             yaml_model("k70", "parameters:\n  model: k70.gguf\ntemplate:\n" + block("chat_message", LLAMA2_MSG)
                        + "\n" + block("chat", "<s>{{.Input}}")),
             chat("k70", ja + [{"role": "assistant", "content": "北海道です。"}, {"role": "user", "content": "もう一つ"}]),
             note="the same template where it belongs, under chat_message"))

    chatml = yaml_model("chatml", "parameters:\n  model: q.gguf\ntemplate:\n  chat_message: chatml\n  chat: chatml-block\n  function: chatml-function")
    chatml_files = {"chatml.tmpl": CHATML_MSG, "chatml-block.tmpl": CHATML_CHAT, "chatml-function.tmpl": CHATML_FUNCTION}
    add(Case("chatml_tmpl_files", chatml, chat("chatml", CONVO), chatml_files))
    add(Case("chatml_tools_function_template", chatml,
             chat("chatml", [{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL, TIME_TOOL]),
             chatml_files, note="template.function with range .Functions and the appended `answer`"))
    add(Case("chatml_tool_call_history", chatml, chat("chatml", [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"role": "tool", "content": "{\"temp\": 21}", "name": "get_weather"},
        {"role": "user", "content": "Thanks"}]), chatml_files,
        note="toJson of a function_call map (sorted keys, <>& escaped)"))
    add(Case("chatml_tool_choice_none_uses_chat", chatml,
             chat("chatml", [{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL], tool_choice="none"),
             chatml_files, note="tool_choice none: no function template, no answer function"))

    inline = lambda name, tmpl: yaml_model(name, "parameters:\n  model: x.gguf\ntemplate:\n" + tmpl)  # noqa: E731
    add(Case("chatml_inline", inline("m", block("chat_message", "<|im_start|>{{.RoleName}}\n{{.Content}}<|im_end|>") + "\n"
                                     + block("chat", "{{.Input}}\n<|im_start|>assistant\n", chomp="|")),
             chat("m", CONVO)))
    add(Case("missing_tmpl_used_literally", inline("m", "  chat: chatml"), chat("m", CONVO),
             note="no chatml.tmpl: the prompt is the 6 characters 'chatml'"))
    add(Case("dash_string_template", inline("m", '  chat: "-"'), chat("m", CONVO),
             note='chat: "-" parses and the prompt becomes "-"'))
    add(Case("chat_message_name_missing", inline("m", "  chat_message: llama2"), chat("m", CONVO),
             note="every message renders as the literal name"))
    add(Case("implicit_model_tmpl_chat",
             yaml_model("m", "parameters:\n  model: foo.bin\nroles:\n  user: 'U: '"),
             chat("m", CONVO), {"foo.bin.tmpl": "### Prompt\n{{.Input}}\n### Reply\n"}))
    add(Case("implicit_model_tmpl_completion",
             yaml_model("m", "parameters:\n  model: foo.bin\ntemplate:\n  chat: '[{{.Input}}]'"),
             {"model": "m", "prompt": "complete me"}, {"foo.bin.tmpl": "PREFIX {{.Input}} SUFFIX"},
             note="template.chat does not apply to completions; the implicit <model>.tmpl does"))
    add(Case("implicit_model_tmpl_overridden",
             yaml_model("m", "parameters:\n  model: foo.bin\ntemplate:\n  chat: '[{{.Input}}]'"),
             chat("m", CONVO), {"foo.bin.tmpl": "PREFIX {{.Input}} SUFFIX"}))
    add(Case("chat_template_exec_error", inline("m", "  chat: '{{.Input}} {{.Nope}}'"), chat("m", CONVO)))
    add(Case("chat_template_parse_error", inline("m", "  chat: '{{if .Input}}unclosed'"), chat("m", CONVO)))
    add(Case("chat_template_slice_on_string", inline("m", "  chat: '{{ slice .Input 0 3 }}'"), chat("m", CONVO),
             note="sprig slice rejects strings"))
    add(Case("chat_message_error_one_message",
             inline("m", block("chat_message", '{{if eq .RoleName "user"}}<u>{{.Content}}</u>{{else}}{{.Missing}}{{end}}')
                    + "\nroles:\n  system: 'SYS:'\n  assistant: 'A: '"),
             chat("m", CONVO), note="errors fall back to role prefix + content for that message"))
    add(Case("empty_message_dropped",
             inline("m", block("chat_message", '{{if ne .RoleName "system"}}{{.RoleName}}: {{.Content}}{{end}}')
                    + "\n" + block("chat", "{{.Input}}|end")),
             chat("m", CONVO), note="system renders empty: dropped, no separator slot"))
    add(Case("roles_prefix_no_space",
             yaml_model("m", "parameters:\n  model: x.gguf\nroles:\n  user: 'User:'\n  assistant: 'Assistant:'\n  system: 'System:'\ntemplate:\n  chat: '{{.Input}}\nAssistant:'"),
             chat("m", CONVO)))
    add(Case("roles_fallback_empty_content_slot",
             yaml_model("m", "parameters:\n  model: x.gguf\nroles:\n  user: 'User: '\ntemplate:\n  chat: '<{{.Input}}>'"),
             chat("m", [{"role": "user", "content": "a"}, {"role": "user", "content": ""},
                        {"role": "assistant", "content": None}, {"role": "user", "content": "b"}]),
             note="empty messages still take a join slot in the fallback path"))
    add(Case("join_empty_string",
             inline("m", block("chat_message", "<{{.RoleName}}>{{.Content}}") + "\n  join_chat_messages_by_character: \"\""),
             chat("m", CONVO)))
    add(Case("join_custom",
             inline("m", block("chat_message", "{{.RoleName}}={{.Content}}") + "\n  join_chat_messages_by_character: \" ||| \""),
             chat("m", CONVO)))
    add(Case("system_prompt_llama2_replaces_content",
             yaml_model("m", "parameters:\n  model: x.gguf\nsystem_prompt: Always answer in French.\ntemplate:\n"
                        + block("chat_message", LLAMA2_MSG) + "\n" + block("chat", "<s>{{.Input}}")),
             chat("m", CONVO), note="with system_prompt the {{if .SystemPrompt}} branch replaces user content"))
    add(Case("system_prompt_in_chat",
             yaml_model("m", "parameters:\n  model: x.gguf\nsystem_prompt: Be kind.\ntemplate:\n  chat: |-\n    {{if .SystemPrompt}}[{{.SystemPrompt}}]\n    {{end}}{{.Input}}"),
             chat("m", [{"role": "user", "content": "hi"}])))
    suppress_tmpl = "  chat: |-\n    {{if not .SuppressSystemPrompt}}SYSTEM: {{.SystemPrompt}}\n    {{end}}{{.Input}}"
    add(Case("suppress_system_prompt_fallback",
             yaml_model("m", "parameters:\n  model: x.gguf\nsystem_prompt: Default system.\nroles:\n  system: 'SYSTEM: '\n  user: 'USER: '\ntemplate:\n" + suppress_tmpl),
             chat("m", CONVO[:2]), note="a system message in the fallback path suppresses the config system prompt"))
    add(Case("suppress_system_prompt_not_by_chat_message",
             yaml_model("m", "parameters:\n  model: x.gguf\nsystem_prompt: Default system.\ntemplate:\n"
                        + block("chat_message", "{{.RoleName}}: {{.Content}}") + "\n" + suppress_tmpl),
             chat("m", CONVO[:2]), note="chat_message-rendered system messages leave it false"))
    add(Case("suppress_needs_content",
             yaml_model("m", "parameters:\n  model: x.gguf\nsystem_prompt: Default system.\ntemplate:\n" + suppress_tmpl),
             chat("m", [{"role": "system", "content": ""}, {"role": "user", "content": "q"}])))
    fc_msgs = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me check <now> & then", "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        {"role": "function", "name": "get_weather", "content": "21C"},
    ]
    add(Case("function_call_fallback_with_roles",
             yaml_model("m", "parameters:\n  model: x.gguf\nroles:\n  user: 'USER: '\n  assistant: 'ASSISTANT: '\n  function: 'FUNCTION: '\ntemplate:\n  chat: '{{.Input}}'"),
             chat("m", fc_msgs)))
    add(Case("function_call_fallback_no_roles", inline("m", "  chat: '{{.Input}}'"), chat("m", fc_msgs)))
    tc = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Köln\"}"}},
          {"index": 1, "id": "call_2", "type": "function", "function": {"arguments": "{}"}}]
    add(Case("tool_calls_fallback_no_content",
             yaml_model("m", "parameters:\n  model: x.gguf\nroles:\n  assistant: 'A:'\ntemplate:\n  chat: '{{.Input}}'"),
             chat("m", [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": tc}]),
             note="struct order index,id,type,function; empty name omitted"))
    add(Case("tool_calls_and_function_call_no_content",
             inline("m", "  chat: '{{.Input}}'"),
             chat("m", [{"role": "assistant", "content": "", "function_call": {"name": "a", "arguments": "1"}, "tool_calls": tc[:1]}]),
             note="without content the tool_calls JSON replaces the function_call JSON"))
    add(Case("tool_calls_empty_list_role_rewrite",
             yaml_model("m", "parameters:\n  model: x.gguf\nroles:\n  assistant: 'A: '\n  assistant_function_call: 'CALL: '\ntemplate:\n  chat: '{{.Input}}'"),
             chat("m", [{"role": "user", "content": "x"}, {"role": "assistant", "content": "ok", "tool_calls": []}]),
             note="an empty tool_calls list still rewrites the role and is marshalled as []"))
    add(Case("assistant_function_call_role_in_chat_message",
             yaml_model("m", "parameters:\n  model: x.gguf\nroles:\n  assistant_function_call: 'call'\ntemplate:\n"
                        + block("chat_message", "{{.RoleName}}/{{.Role}}: {{.Content}}{{if .FunctionCall}} -> {{toJson .FunctionCall}}{{end}}")),
             chat("m", fc_msgs)))
    add(Case("chat_message_tool_calls_range",
             inline("m", block("chat_message", "{{.RoleName}}:{{range .FunctionCall}} {{.FunctionCall.Name}}({{.FunctionCall.Arguments}})#{{.ID}}{{end}}{{.Content}}")),
             chat("m", [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": tc}])))
    add(Case("chat_message_flags",
             yaml_model("m", "parameters:\n  model: x.gguf\ngrammar: 'root ::= \"x\"'\nsystem_prompt: SP\ntemplate:\n"
                        + block("chat_message", "{{.MessageIndex}}:{{.RoleName}}:{{.FunctionName}}:{{.LastMessage}}:{{.Function}}:{{.SystemPrompt}}:{{.Content}}")),
             chat("m", fc_msgs)))
    add(Case("llama3_chat", inline("m", block("chat_message", LLAMA3_MSG) + "\n" + block("chat", LLAMA3_CHAT, chomp="|")
                                   + "\n" + block("function", LLAMA3_FUNCTION, chomp="|")),
             chat("m", CONVO)))
    add(Case("llama3_function", inline("m", block("chat_message", LLAMA3_MSG) + "\n" + block("chat", LLAMA3_CHAT, chomp="|")
                                       + "\n" + block("function", LLAMA3_FUNCTION, chomp="|")),
             chat("m", [{"role": "user", "content": "Time?"}], functions=[TIME_TOOL["function"]])))
    add(Case("llama3_function_disable_no_action",
             yaml_model("m", "parameters:\n  model: x.gguf\nfunction:\n  disable_no_action: true\ntemplate:\n"
                        + block("chat_message", LLAMA3_MSG) + "\n" + block("function", LLAMA3_FUNCTION, chomp="|")),
             chat("m", [{"role": "user", "content": "Time?"}], tools=[TIME_TOOL, WEATHER_TOOL])))
    add(Case("function_named_selects_one",
             inline("m", block("chat", "{{range .Functions}}<{{.Name}}>{{end}}{{.Input}}") + "\n"
                    + block("function", "{{range .Functions}}[{{.Name}}]{{end}}{{.Input}}")),
             chat("m", [{"role": "user", "content": "go"}], tools=[WEATHER_TOOL, TIME_TOOL],
                  tool_choice={"type": "function", "function": {"name": "get_time"}})))
    add(Case("tools_without_function_template",
             inline("m", block("chat", "{{range $i, $f := .Functions}}{{$i}}={{$f.Name}};{{end}}\n{{.Input}}")),
             chat("m", [{"role": "user", "content": "go"}], tools=[WEATHER_TOOL])))
    add(Case("hermes_tools_print_accumulate",
             inline("m", block("chat_message", CHATML_MSG) + "\n" + block("function", HERMES_TOOLS_FUNCTION)),
             chat("m", [{"role": "user", "content": "Weather in Rome?"}], tools=[WEATHER_TOOL, TIME_TOOL])))
    add(Case("mistral_join_empty",
             inline("m", block("chat_message", MISTRAL_MSG) + "\n" + block("function", MISTRAL_FUNCTION)
                    + "\n  join_chat_messages_by_character: \"\"\n" + block("chat", "{{.Input -}}")),
             chat("m", [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}])))
    add(Case("mistral_tools",
             inline("m", block("chat_message", MISTRAL_MSG) + "\n" + block("function", MISTRAL_FUNCTION)
                    + "\n  join_chat_messages_by_character: \"\"\n" + block("chat", "{{.Input -}}")),
             chat("m", [{"role": "user", "content": "Weather?"},
                        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": "{}"}},
                        {"role": "tool", "content": "sunny"}], tools=[WEATHER_TOOL])))
    add(Case("vicuna_gallery",
             yaml_model("m", "parameters:\n  model: x.gguf\nsystem_prompt: A chat between a curious user and an artificial intelligence assistant.\nroles:\n  user: 'USER:'\n  assistant: 'ASSISTANT:'\n  system: 'SYSTEM:'\ntemplate:\n" + block("chat", VICUNA_CHAT, chomp="|")),
             chat("m", CONVO[1:])))
    add(Case("alpaca_chat", inline("m", block("chat", ALPACA_CHAT, chomp="|") + "\n" + block("completion", ALPACA_CHAT, chomp="|")),
             chat("m", [{"role": "user", "content": "Name three colors."}])))
    add(Case("alpaca_completion", inline("m", block("chat", ALPACA_CHAT, chomp="|") + "\n" + block("completion", ALPACA_CHAT, chomp="|")),
             {"model": "m", "prompt": "Name three colors."}))
    add(Case("completion_no_template", inline("m", "  chat: 'C {{.Input}}'"), {"model": "m", "prompt": "raw text\n"}))
    add(Case("completion_template_error", inline("m", "  completion: '{{.Input | nosuchfunc}}'"),
             {"model": "m", "prompt": "raw"}))
    add(Case("completion_system_prompt",
             yaml_model("m", "parameters:\n  model: x.gguf\nsystem_prompt: SYS\ntemplate:\n  completion: '{{.SystemPrompt}}|{{.Input}}|{{.SuppressSystemPrompt}}'"),
             {"model": "m", "prompt": "p"}))
    mm = [{"role": "user", "content": [{"type": "text", "text": "What is "},
                                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                                        {"type": "text", "text": "this?"}]},
          {"role": "assistant", "content": "A cat."},
          {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,BBBB"}},
                                       {"type": "text", "text": "And these?"}]}]
    add(Case("array_content_default_multimodal", inline("m", block("chat_message", "{{.RoleName}}: {{.Content}}")), chat("m", mm)))
    add(Case("array_content_custom_multimodal",
             inline("m", block("chat_message", "{{.RoleName}}: {{.Content}}") + "\n  multimodal: '{{ range .Images }}[img-{{.ID}}]{{end}}{{.Text}}'"),
             chat("m", mm), note="image IDs count across messages"))
    add(Case("null_and_object_content",
             yaml_model("m", "parameters:\n  model: x.gguf\nroles:\n  user: 'U:'\ntemplate:\n  chat: '{{.Input}}'"),
             chat("m", [{"role": "user", "content": None}, {"role": "user", "content": {"x": 1}}, {"role": "user", "content": "z"}])))
    add(Case("reasoning_effort_and_metadata",
             inline("m", block("chat", "effort={{.ReasoningEffort}} {{range $k, $v := .Metadata}}{{$k}}={{$v}};{{end}}\n{{.Input}}")),
             chat("m", [{"role": "user", "content": "q"}], reasoning_effort="high",
                  metadata={"user_tier": "gold", "localai_assistant": "true", "mcp_servers": "", "mcp_prompt": "p"}),
             note="localai_assistant always deleted; mcp_* deleted only when non-empty"))
    add(Case("path_escape_rejected", inline("m", "  chat: ../outside"), chat("m", CONVO),
             {"../outside.tmpl": "never read {{.Input}}"},
             note="<models>/../outside.tmpl leaves the models path: evaluation fails, raw prompt",
             config_check_rejects=True))
    add(Case("crlf_tmpl_file_kept", inline("m", "  chat: crlf"), chat("m", CONVO[1:2]),
             {"crlf.tmpl": "Line one\r\n{{.Input}}\r\nEnd\r\n"}))
    add(Case("whitespace_trim_only_template_text",
             inline("m", "  chat: " + json.dumps("  {{- .Input -}}  \n\n!")),
             chat("m", [{"role": "user", "content": "\n\n  padded  \n\n"}])))
    add(Case("go_and_or_print_semantics",
             inline("m", block("chat", '{{and .SuppressSystemPrompt "x"}}|{{or .SystemPrompt "fallback"}}|{{print "a" 1 2 "b"}}|{{len .Input}}|{{upper "straße"}}|{{.Input}}')),
             chat("m", [{"role": "user", "content": "héllo"}])))
    add(Case("sprig_functions",
             inline("m", block("chat", '{{ .Input | trim | title }}|{{ default "dflt" .SystemPrompt }}|{{ contains "ell" .Input }}|{{ hasPrefix "  h" .Input }}|{{ replace "l" "L" .Input }}|{{ trunc 3 .Input }}')),
             chat("m", [{"role": "user", "content": "  hello world  "}])))
    return c


def build_expected(case: Case, d: Path) -> Outcome:
    configs = yaml.safe_load(case.config)
    cfg = next(m for m in configs if m["name"] == case.request["model"])
    if "messages" in case.request:
        return chat_prompt(d, cfg, case.request)
    return completion_prompt(d, cfg, case.request)


def write_case(case: Case, root: Path) -> None:
    d = root / case.name
    models = d / "models"
    models.mkdir(parents=True)
    (d / "config.yaml").write_text(case.config, encoding="utf-8")
    (d / "request.json").write_text(json.dumps(case.request, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for name, text in case.files.items():
        target = (models / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    out = build_expected(case, models)
    (d / "expected.txt").write_bytes(out.prompt.encode("utf-8"))
    meta = {"model": case.request["model"], "note": case.note, "expect_warning": bool(out.warnings),
            "config_check_rejects": case.config_check_rejects}
    (d / "case.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and diff with the checked-in goldens")
    args = ap.parse_args()
    all_cases = cases()
    names = [c.name for c in all_cases]
    assert len(names) == len(set(names)), "duplicate case names"
    target = Path(tempfile.mkdtemp()) if args.check else OUT
    if not args.check and OUT.exists():
        shutil.rmtree(OUT)
    target.mkdir(parents=True, exist_ok=True)
    for case in all_cases:
        write_case(case, target)
        print(f"{case.name}: ok", file=sys.stderr)
    if args.check:
        r = subprocess.run(["diff", "-r", str(OUT), str(target)])
        return r.returncode
    print(f"{len(all_cases)} cases written to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
