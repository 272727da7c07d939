"""LocalAI's prompt pipeline: OpenAI messages/prompt + model config -> the prompt text the backend gets."""
from __future__ import annotations

import os
import posixpath
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat.gotemplate import TemplateError, go_field, parse
from compat.gotemplate.gojson import marshal
from compat.jinja_chat import TokenizerTemplate, read_gguf_tokenizer_template, render_chat_template

__all__ = [
    "ChatMessageTemplateData", "Function", "FunctionCall", "PromptRequestError", "PromptResult",
    "PromptTemplateData", "ToolCall", "TokenizerTemplate", "build_chat_prompt", "build_completion_prompt",
    "decode_message_content", "gguf_tokenizer_template", "uses_tokenizer_template", "wants_tokenizer_template",
]

# --- LocalAI's data structs (Go field names; json tags where LocalAI's structs have them) ------


@dataclass
class Function:
    """pkg/functions.Function."""

    Name: str = field(default="", metadata=go_field(json="name"))
    Description: str = field(default="", metadata=go_field(json="description"))
    Strict: bool = field(default=False, metadata=go_field(json="strict"))
    Parameters: dict | None = field(default=None, metadata=go_field(json="parameters"))


@dataclass
class FunctionCall:
    """core/schema.FunctionCall (inside a tool call)."""

    Name: str = field(default="", metadata=go_field(json="name,omitempty"))
    Arguments: str = field(default="", metadata=go_field(json="arguments"))


@dataclass
class ToolCall:
    """core/schema.ToolCall."""

    Index: int = field(default=0, metadata=go_field(json="index"))
    ID: str = field(default="", metadata=go_field(json="id"))
    Type: str = field(default="", metadata=go_field(json="type"))
    FunctionCall: FunctionCall = field(default_factory=FunctionCall, metadata=go_field(json="function"))


@dataclass
class PromptTemplateData:
    """Data of chat, completion, edit and function templates (core/templates/evaluator.go)."""

    SystemPrompt: str = ""
    SuppressSystemPrompt: bool = False
    Input: str = ""
    Instruction: str = ""
    Functions: list[Function] | None = None
    MessageIndex: int = 0
    ReasoningEffort: str = ""
    Metadata: dict[str, str] | None = None


@dataclass
class ChatMessageTemplateData:
    """Data of the per-message chat_message template."""

    SystemPrompt: str = ""
    Role: str = ""
    RoleName: str = ""
    FunctionName: str = ""
    Content: str = ""
    MessageIndex: int = 0
    Function: bool = False
    FunctionCall: Any = None
    LastMessage: bool = False


@dataclass
class MultimodalContent:
    ID: int = 0


@dataclass
class MultimodalTemplateData:
    Audio: list[MultimodalContent] = field(default_factory=list)
    Images: list[MultimodalContent] = field(default_factory=list)
    Video: list[MultimodalContent] = field(default_factory=list)
    Text: str = ""


DEFAULT_MULTIMODAL_TEMPLATE = (
    "{{ range .Audio }}<__media__>{{end}}{{ range .Images }}<__media__>{{end}}"
    "{{ range .Video }}[vid-{{.ID}}]{{end}}{{.Text}}"
)
NO_ACTION_NAME = "answer"
NO_ACTION_DESCRIPTION = "use this action to answer without performing any action"
# Metadata keys the chat handler consumes before templating (MCP / assistant features).
METADATA_ALWAYS_DELETED = ("localai_assistant",)
METADATA_DELETED_WHEN_NONEMPTY = ("mcp_servers", "mcp_prompt", "mcp_prompt_args", "mcp_resources")


@dataclass
class PromptResult:
    text: str
    warnings: list[str]
    # How the text was made: "template.chat", "template.chat_message+chat", "template.function",
    # "template.completion", "<model>.tmpl" (implicit file), "template.chat_message", "raw", "tokenizer".
    source: str


class PromptRequestError(ValueError):
    """The request body cannot be turned into a prompt (wrong types where LocalAI's decode fails)."""


# --- template resolution and cache --------------------------------------------------------------


class _TemplateCache:
    """Parsed templates by source text; parse errors are remembered too. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[str, Any] = {}

    def get(self, text: str):
        # Parsing under the lock keeps it to once per text; parses are short and rare.
        with self._lock:
            hit = self._parsed.get(text)
            if hit is None:
                try:
                    hit = parse(text, name="prompt")
                except TemplateError as e:
                    hit = e
                self._parsed[text] = hit
        if isinstance(hit, TemplateError):
            raise hit
        return hit


_cache = _TemplateCache()


class TemplateOutsidePath(Exception):
    pass


def _in_trusted_root(path: str, root: str) -> bool:
    # pkg/utils.InTrustedRoot: walk up the parents until "/" looking for the root.
    while path != "/":
        path = posixpath.dirname(path)
        if path == root:
            return True
    return False


def template_source(models_path: Path, value: str) -> tuple[str, Path | None]:
    """(template text, file it came from or None): `<models>/<value>.tmpl` if it exists, else value.

    Raises TemplateOutsidePath where LocalAI's path check rejects the name.
    """
    base = posixpath.normpath(os.path.abspath(str(models_path)))
    name = value + ".tmpl"
    cleaned = posixpath.normpath(posixpath.join(base, name))
    if not _in_trusted_root(cleaned, base):
        raise TemplateOutsidePath(f"template file outside path: {posixpath.join(base, name)}")
    try:
        os.stat(cleaned)
        exists = True
    except (OSError, ValueError):
        exists = False
    if exists:
        # Byte for byte: no newline translation (CRLF stays CRLF).
        with open(cleaned, "rb") as f:
            return f.read().decode("utf-8", errors="replace"), Path(cleaned)
    return value, None


def _model_tmpl_exists(models_path: Path, model: str) -> bool:
    if not model:
        return False
    try:
        os.stat(os.path.join(str(models_path), model + ".tmpl"))
        return True
    except (OSError, ValueError):
        return False


def _describe(value: str) -> str:
    one = value if len(value) <= 40 and "\n" not in value else (value.split("\n", 1)[0][:40] + "...")
    return repr(one)


def _evaluate(models_path: Path, value: str, data: Any) -> tuple[str, Path | None]:
    text, file = template_source(models_path, value)
    return _cache.get(text).execute(data), file


def _literal_name_warning(setting: str, value: str, file: Path | None, models_path: Path) -> str | None:
    if file is None and "{{" not in value:
        return (f"{setting} {_describe(value)} is not a template file ({value}.tmpl is not in "
                f"{models_path}) and has no {{{{ }}}} actions: LocalAI uses the text itself, so it is "
                f"sent literally")
    return None


# --- request decoding ---------------------------------------------------------------------------


def _media_ok(url: Any) -> bool:
    # LocalAI skips a part whose URL it cannot turn into base64 (data: URIs; http(s) is downloaded).
    if not isinstance(url, str):
        return False
    return url.startswith(("http://", "https://")) or (url.startswith("data:") and ";base64," in url)


def _url_of(part: dict, key: str) -> Any:
    v = part.get(key)
    return v.get("url") if isinstance(v, dict) else None


@dataclass
class _Counters:
    images: int = 0
    videos: int = 0
    audios: int = 0


def decode_message_content(content: Any, *, multimodal: str, counters: _Counters | None = None,
                           apply_multimodal: bool = True, warnings: list[str] | None = None) -> str:
    """LocalAI's StringContent: string as is, text parts concatenated (+ multimodal template), else ""."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    counters = counters or _Counters()
    text = ""
    n_img = n_vid = n_aud = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            t = part.get("text")
            text += t if isinstance(t, str) else ""
        elif kind in ("video", "video_url"):
            if _media_ok(_url_of(part, "video_url")):
                counters.videos += 1
                n_vid += 1
        elif kind in ("audio_url", "audio"):
            if _media_ok(_url_of(part, "audio_url")):
                counters.audios += 1
                n_aud += 1
        elif kind == "input_audio":
            counters.audios += 1
            n_aud += 1
        elif kind in ("image_url", "image"):
            if _media_ok(_url_of(part, "image_url")):
                counters.images += 1
                n_img += 1
    if not apply_multimodal:
        return text
    data = MultimodalTemplateData(
        Audio=[MultimodalContent(i + counters.audios - n_aud) for i in range(n_aud)],
        Images=[MultimodalContent(i + counters.images - n_img) for i in range(n_img)],
        Video=[MultimodalContent(i + counters.videos - n_vid) for i in range(n_vid)],
        Text=text,
    )
    try:
        return _cache.get(multimodal or DEFAULT_MULTIMODAL_TEMPLATE).execute(data)
    except TemplateError as e:
        # LocalAI ignores the error and keeps what was rendered (nothing, for a parse error).
        if warnings is not None:
            warnings.append(f"template.multimodal failed ({e}); LocalAI then uses the partial output "
                            f"(empty here) as the message content")
        return getattr(e, "partial_output", "") or ""


def _tool_calls(value: Any) -> list[ToolCall] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise PromptRequestError("message field 'tool_calls' must be a list")
    out = []
    for i, tc in enumerate(value):
        if not isinstance(tc, dict):
            raise PromptRequestError(f"tool_calls[{i}] must be an object")
        fn = tc.get("function") or {}
        if not isinstance(fn, dict):
            raise PromptRequestError(f"tool_calls[{i}].function must be an object")
        idx = tc.get("index", 0)
        if isinstance(idx, bool) or not isinstance(idx, (int, float)) or float(idx) != int(idx):
            raise PromptRequestError(f"tool_calls[{i}].index must be an integer")
        for key, v in (("id", tc.get("id")), ("type", tc.get("type")), ("function.name", fn.get("name")),
                       ("function.arguments", fn.get("arguments"))):
            if v is not None and not isinstance(v, str):
                raise PromptRequestError(f"tool_calls[{i}].{key} must be a string")
        out.append(ToolCall(Index=int(idx), ID=tc.get("id") or "", Type=tc.get("type") or "",
                            FunctionCall=FunctionCall(Name=fn.get("name") or "",
                                                      Arguments=fn.get("arguments") or "")))
    return out


def as_go_any(v: Any) -> Any:
    """A JSON-decoded value as Go's `any` holds it: every number is a float64."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, dict):
        return {k: as_go_any(x) for k, x in v.items()}
    if isinstance(v, list):
        return [as_go_any(x) for x in v]
    return v


def _functions(request: dict) -> list[Function]:
    raw = []
    fns = request.get("functions")
    if fns is not None:
        if not isinstance(fns, list):
            raise PromptRequestError("request field 'functions' must be a list")
        raw += fns
    tools = request.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise PromptRequestError("request field 'tools' must be a list")
        for t in tools:
            raw.append(t.get("function") if isinstance(t, dict) else None)
    out = []
    for f in raw:
        if f is None:
            out.append(Function())
            continue
        if not isinstance(f, dict):
            raise PromptRequestError("each function/tool must be an object")
        params = f.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise PromptRequestError(f"function {f.get('name')!r}: 'parameters' must be an object")
        out.append(Function(Name=f.get("name") or "", Description=f.get("description") or "",
                            Strict=f.get("strict") is True,
                            Parameters=as_go_any(params) if params is not None else None))
    return out


@dataclass
class _FunctionMode:
    mode: str = ""   # "", "none", "auto", "required", ...
    name: str = ""   # a specific function to call


def _function_mode(request: dict) -> _FunctionMode:
    fc = request.get("function_call")
    tc = request.get("tool_choice")
    if tc is not None:
        if isinstance(tc, str) and tc not in ("", "auto"):
            fc = tc
            if tc.strip().startswith("{"):
                try:
                    import json
                    nested = json.loads(tc)
                except ValueError:
                    nested = None
                if isinstance(nested, dict) and _tool_choice_name(nested):
                    fc = {"name": _tool_choice_name(nested)}
        elif isinstance(tc, dict) and _tool_choice_name(tc):
            fc = {"name": _tool_choice_name(tc)}
    if isinstance(fc, str):
        return _FunctionMode(mode=fc)
    if isinstance(fc, dict):
        name = fc.get("name")
        return _FunctionMode(name=name if isinstance(name, str) else "")
    return _FunctionMode()


def _tool_choice_name(m: dict) -> str:
    if m.get("type") != "function":
        return ""
    fn = m.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]:
        return fn["name"]
    return m["name"] if isinstance(m.get("name"), str) else ""


def _metadata(request: dict) -> dict[str, str] | None:
    md = request.get("metadata")
    if md is None:
        return None
    if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
        raise PromptRequestError("request field 'metadata' must be an object of strings")
    md = dict(md)
    for k in METADATA_ALWAYS_DELETED:
        md.pop(k, None)
    for k in METADATA_DELETED_WHEN_NONEMPTY:
        if md.get(k):
            del md[k]
    return md


def _reasoning_effort(request: dict) -> str:
    v = request.get("reasoning_effort")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise PromptRequestError("request field 'reasoning_effort' must be a string")
    return v


def _messages(request: dict) -> list[dict]:
    msgs = request.get("messages")
    if msgs is None:
        return []
    if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
        raise PromptRequestError("request field 'messages' must be a list of objects")
    for i, m in enumerate(msgs):
        for key in ("role", "name"):
            if m.get(key) is not None and not isinstance(m[key], str):
                raise PromptRequestError(f"messages[{i}].{key} must be a string")
    return msgs


# --- config access ------------------------------------------------------------------------------


def _tcfg(config: Any) -> Any:
    return getattr(config, "template", None)


def _t(config: Any, name: str) -> Any:
    t = _tcfg(config)
    return getattr(t, name, None) if t is not None else None


def _model_name(config: Any) -> str:
    p = getattr(config, "parameters", None)
    return (getattr(p, "model", "") or "") if p is not None else ""


def has_go_template(config: Any) -> bool:
    """LocalAI's HasTemplate(): a chat, chat_message, completion or edit template is set."""
    return any(_t(config, k) for k in ("chat", "chat_message", "completion", "edit"))


def wants_tokenizer_template(config: Any) -> bool:
    """Whether the model file's chat template may render chat prompts: use_tokenizer_template is
    set, or no chat/chat_message/completion/edit template is (LocalAI v3.8+ switches a GGUF
    model without one to its tokenizer template; the implicit <model>.tmpl does not count)."""
    return bool(_t(config, "use_tokenizer_template")) or not has_go_template(config)


def uses_tokenizer_template(config: Any, tokenizer_template: TokenizerTemplate | None) -> bool:
    """True when chat prompts come from the tokenizer template (or, lacking one under an explicit
    use_tokenizer_template, from the plain joined messages)."""
    if _t(config, "use_tokenizer_template"):
        return True
    return tokenizer_template is not None and not has_go_template(config)


def _grammar_enabled(config: Any) -> bool:
    fn = getattr(config, "function", None)
    g = getattr(fn, "grammar", None) if fn is not None else None
    return not bool(getattr(g, "disable", False))


def _disable_no_action(config: Any) -> bool:
    fn = getattr(config, "function", None)
    return bool(getattr(fn, "disable_no_action", False)) if fn is not None else False


def _no_action(config: Any) -> Function:
    fn = getattr(config, "function", None)
    name = (getattr(fn, "no_action_function_name", "") if fn is not None else "") or NO_ACTION_NAME
    desc = (getattr(fn, "no_action_description_name", "") if fn is not None else "") or NO_ACTION_DESCRIPTION
    return Function(Name=name, Description=desc, Parameters={
        "properties": {"message": {"type": "string", "description": "The message to reply the user with"}}})


# --- prompt evaluation (chat/completion/function template with implicit <model>.tmpl) ----------


def _evaluate_prompt(config: Any, models_path: Path, setting: str, data: PromptTemplateData,
                     warnings: list[str]) -> tuple[str, str | None]:
    """(prompt, source) for one prompt-level template type; source None = untemplated input."""
    value, source = "", None
    model = _model_name(config)
    if _model_tmpl_exists(models_path, model):
        value, source = model, f"{model}.tmpl"
    own = _t(config, setting)
    if own:
        value, source = own, f"template.{setting}"
    if not value:
        return data.Input, None
    try:
        text, file = _evaluate(models_path, value, data)
    except (TemplateError, TemplateOutsidePath, OSError) as e:
        where = f"template.{setting}" if own else f"{model}.tmpl"
        warnings.append(f"{where} failed: {e}; LocalAI then uses the untemplated input as the prompt")
        return data.Input, None
    if own:
        w = _literal_name_warning(f"template.{setting}", own, file, models_path)
        if w:
            warnings.append(w)
    return text, source


def build_completion_prompt(config: Any, models_path: Path, prompt: str, request: dict) -> PromptResult:
    """One completion prompt string through template.completion (or <model>.tmpl)."""
    warnings: list[str] = []
    data = PromptTemplateData(SystemPrompt=getattr(config, "system_prompt", "") or "", Input=prompt,
                              ReasoningEffort=_reasoning_effort(request), Metadata=_metadata(request))
    text, source = _evaluate_prompt(config, Path(models_path), "completion", data, warnings)
    return PromptResult(text, warnings, source or "raw")


def completion_prompts(request: dict) -> list[str]:
    """The prompt strings of a completion request (a string, or the strings of a list)."""
    p = request.get("prompt")
    if isinstance(p, str):
        return [p]
    if isinstance(p, list):
        return [s for s in p if isinstance(s, str)]
    return []


# --- chat ----------------------------------------------------------------------------------------


def build_chat_prompt(config: Any, models_path: Path, request: dict, *,
                      tokenizer_template: TokenizerTemplate | None = None) -> PromptResult:
    """The prompt LocalAI builds for a chat request (or the GGUF chat template's rendering)."""
    models_path = Path(models_path)
    warnings: list[str] = []
    messages = _messages(request)
    functions = _functions(request)
    metadata = _metadata(request)
    effort = _reasoning_effort(request)

    if uses_tokenizer_template(config, tokenizer_template):
        if tokenizer_template is not None:
            text = render_chat_template(tokenizer_template, messages, tools=request.get("tools"),
                                        functions=request.get("functions"),
                                        tool_choice=request.get("tool_choice"),
                                        function_call=request.get("function_call"))
            return PromptResult(text, warnings, "tokenizer")
        warnings.append("template.use_tokenizer_template is set but the model file has no "
                        "tokenizer.chat_template; the messages are joined without a template")
        return PromptResult(_join_messages_raw(config, messages, warnings), warnings, "raw")

    mode = _function_mode(request)
    should_use_fn = bool(functions) and (mode.mode != "none" or bool(mode.name))
    funcs: list[Function] | None = functions if functions or request.get("functions") is not None \
        or request.get("tools") is not None else None
    grammar_from_functions = False
    if should_use_fn and (_grammar_enabled(config) or any(f.Strict for f in functions)):
        grammar_from_functions = True
        if not _disable_no_action(config):
            funcs = list(functions) + [_no_action(config)]
    if mode.name and funcs is not None:
        funcs = [f for f in funcs if f.Name == mode.name]

    grammar_set = bool(getattr(config, "grammar", "") or request.get("grammar")) or grammar_from_functions \
        or _json_response_format(request)

    joined, suppress, used_chat_message = _template_messages(
        config, models_path, messages, grammar_set, warnings)

    setting = "function" if (_t(config, "function") and should_use_fn) else "chat"
    data = PromptTemplateData(SystemPrompt=getattr(config, "system_prompt", "") or "",
                              SuppressSystemPrompt=suppress, Input=joined, Functions=funcs,
                              ReasoningEffort=effort, Metadata=metadata)
    text, source = _evaluate_prompt(config, models_path, setting, data, warnings)
    if used_chat_message:
        src = "template.chat_message" + ("+" + (source.removeprefix("template.") if source else "raw")
                                         if source else "")
    else:
        src = source or "raw"
    return PromptResult(text, warnings, src)


def _json_response_format(request: dict) -> bool:
    rf = request.get("response_format")
    kind = rf.get("type") if isinstance(rf, dict) else rf
    return kind in ("json_object", "json_schema")


def _join(config: Any, parts: list[str]) -> str:
    sep = _t(config, "join_chat_messages_by_character")
    return ("\n" if sep is None else sep).join(parts)


def _join_messages_raw(config: Any, messages: list[dict], warnings: list[str]) -> str:
    counters = _Counters()
    parts = [decode_message_content(m.get("content"), multimodal="", counters=counters,
                                    apply_multimodal=False, warnings=warnings) for m in messages]
    return _join(config, parts)


def _template_messages(config: Any, models_path: Path, messages: list[dict], grammar_set: bool,
                       warnings: list[str]) -> tuple[str, bool, bool]:
    """(joined text, SuppressSystemPrompt, whether chat_message rendered any message)."""
    roles: dict = getattr(config, "roles", None) or {}
    chat_message = _t(config, "chat_message") or ""
    multimodal = _t(config, "multimodal") or ""
    system_prompt = getattr(config, "system_prompt", "") or ""
    counters = _Counters()
    suppress = False
    used = False
    mess: list[str] = []
    last = len(messages) - 1
    for i, m in enumerate(messages):
        role = m.get("role") or ""
        has_fc = m.get("function_call") is not None
        tool_calls = _tool_calls(m.get("tool_calls"))
        if (has_fc or tool_calls is not None) and role == "assistant" and roles.get("assistant_function_call"):
            role = "assistant_function_call"
        r = roles.get(role) or ""
        if not isinstance(r, str):
            r = str(r)
        text = decode_message_content(m.get("content"), multimodal=multimodal, counters=counters,
                                      warnings=warnings)
        content_exists = text != ""
        function_call = as_go_any(m.get("function_call"))
        fcall: Any = tool_calls if tool_calls else function_call

        content = ""
        if chat_message:
            data = ChatMessageTemplateData(
                SystemPrompt=system_prompt, Role=r, RoleName=role, FunctionName=m.get("name") or "",
                Content=text, MessageIndex=i, Function=grammar_set and i == last, FunctionCall=fcall,
                LastMessage=i == last)
            try:
                rendered, file = _evaluate(models_path, chat_message, data)
            except (TemplateError, TemplateOutsidePath, OSError) as e:
                warnings.append(f"template.chat_message failed for message {i} (role {role!r}): {e}; "
                                f"LocalAI then formats this message as role prefix + content")
            else:
                if rendered == "":
                    warnings.append(f"template.chat_message rendered nothing for message {i} "
                                    f"(role {role!r}); LocalAI drops the message")
                    continue
                if i == 0:
                    w = _literal_name_warning("template.chat_message", chat_message, file, models_path)
                    if w:
                        warnings.append(w)
                used = True
                content = rendered

        if content == "":
            prefix = r + " " if r else ""
            if content_exists:
                content = r + text
            if function_call is not None:
                j = marshal(function_call)
                content = content + "\n" + prefix + j if content_exists else prefix + j
            if tool_calls is not None:
                j = marshal(tool_calls)
                content = content + "\n" + prefix + j if content_exists else prefix + j
            if content_exists and role == "system":
                suppress = True
        mess.append(content)
    return _join(config, mess), suppress, used


def gguf_tokenizer_template(config: Any, models_path: Path) -> TokenizerTemplate | None:
    """The model file's chat template when the config leaves chat prompts to it, else None."""
    if not wants_tokenizer_template(config):
        return None
    model = getattr(getattr(config, "parameters", None), "model", "") or ""
    if not model:
        return None
    path = Path(models_path) / model
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                return None
    except OSError:
        return None
    return read_gguf_tokenizer_template(str(path))
