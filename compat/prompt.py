"""LocalAI's prompt pipeline: OpenAI messages/prompt + model config -> the prompt text the backend gets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compat.chat_request import (
    MediaCounters, PromptRequestError, completion_prompts, decode_message_content,
    decode_tool_calls, function_mode, request_functions, request_messages, request_metadata,
    request_reasoning_effort, wants_json_response,
)
from compat.gotemplate import TemplateError, go_json_value
from compat.gotemplate.gojson import marshal
from compat.jinja_chat import TokenizerTemplate, read_gguf_tokenizer_template, render_chat_template
from compat.prompt_data import (
    ChatMessageTemplateData, Function, FunctionCall,
    PromptTemplateData, ToolCall,
)
from compat.tool_calls import ToolSettings, tool_settings
from compat.prompt_templates import (
    TemplateOutsidePath, evaluate_template, literal_name_warning, model_tmpl_exists,
)

__all__ = [
    "ChatMessageTemplateData", "Function", "FunctionCall", "PromptRequestError", "PromptResult",
    "PromptTemplateData", "ToolCall", "TokenizerTemplate", "build_chat_prompt", "build_completion_prompt",
    "completion_prompts", "decode_message_content", "gguf_tokenizer_template", "uses_tokenizer_template",
    "wants_tokenizer_template",
]


@dataclass
class PromptResult:
    text: str
    warnings: list[str]
    # How the text was made: "template.chat", "template.chat_message+chat", "template.function",
    # "template.completion", "<model>.tmpl" (implicit file), "template.chat_message", "raw", "tokenizer".
    source: str
    # The BOS token text a GGUF chat template wrote at the very start (`{{ bos_token }}`), or "".
    # The tokenizer adds BOS by the vocabulary's own rule, so the engine drops this text and
    # the model sees one BOS either way (llama-server does the same).
    leading_bos: str = ""

    @property
    def engine_text(self) -> str:
        """The text to tokenize (with the tokenizer adding BOS as the vocabulary says)."""
        return self.text[len(self.leading_bos):]


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


def _no_action(settings: ToolSettings) -> Function:
    return Function(Name=settings.no_action_name, Description=settings.no_action_description, Parameters={
        "properties": {"message": {"type": "string", "description": "The message to reply the user with"}}})


# --- prompt evaluation (chat/completion/function template with implicit <model>.tmpl) ----------


def _evaluate_prompt(config: Any, models_path: Path, setting: str, data: PromptTemplateData,
                     warnings: list[str]) -> tuple[str, str | None]:
    """(prompt, source) for one prompt-level template type; source None = untemplated input."""
    value, source = "", None
    model = _model_name(config)
    if model_tmpl_exists(models_path, model):
        value, source = model, f"{model}.tmpl"
    own = _t(config, setting)
    if own:
        value, source = own, f"template.{setting}"
    if not value:
        return data.Input, None
    try:
        text, file = evaluate_template(models_path, value, data)
    except (TemplateError, TemplateOutsidePath, OSError) as e:
        where = f"template.{setting}" if own else f"{model}.tmpl"
        warnings.append(f"{where} failed: {e}; LocalAI then uses the untemplated input as the prompt"
                        + _per_message_hint(str(e)))
        return data.Input, None
    if own:
        w = literal_name_warning(f"template.{setting}", own, file, models_path)
        if w:
            warnings.append(w)
    return text, source


_MESSAGE_ONLY_FIELDS = ("RoleName", "Role", "Content", "FunctionCall", "FunctionName", "LastMessage")


def _per_message_hint(error: str) -> str:
    # The field note's karakuri-70b case: a per-message template put under template.chat.
    for name in _MESSAGE_ONLY_FIELDS:
        if f"can't evaluate field {name} " in error:
            return (f" (.{name} exists only for template.chat_message: this looks like a per-message "
                    f"template in the wrong place)")
    return ""


def build_completion_prompt(config: Any, models_path: Path, prompt: str, request: dict) -> PromptResult:
    """One completion prompt string through template.completion (or <model>.tmpl)."""
    warnings: list[str] = []
    data = PromptTemplateData(SystemPrompt=getattr(config, "system_prompt", "") or "", Input=prompt,
                              ReasoningEffort=request_reasoning_effort(request),
                              Metadata=request_metadata(request, chat=False))
    text, source = _evaluate_prompt(config, Path(models_path), "completion", data, warnings)
    return PromptResult(text, warnings, source or "raw")


# --- chat ----------------------------------------------------------------------------------------


def build_chat_prompt(config: Any, models_path: Path, request: dict, *,
                      tokenizer_template: TokenizerTemplate | None = None,
                      template_kwargs: dict[str, Any] | None = None) -> PromptResult:
    """The prompt LocalAI builds for a chat request (or the GGUF chat template's rendering)."""
    models_path = Path(models_path)
    warnings: list[str] = []
    messages = request_messages(request)
    functions = request_functions(request)
    metadata = request_metadata(request, chat=True)
    effort = request_reasoning_effort(request)

    if uses_tokenizer_template(config, tokenizer_template):
        if tokenizer_template is not None:
            text = render_chat_template(tokenizer_template, messages, tools=request.get("tools"),
                                        functions=request.get("functions"),
                                        tool_choice=request.get("tool_choice"),
                                        function_call=request.get("function_call"), extra=template_kwargs)
            bos = tokenizer_template.bos_token
            return PromptResult(text, warnings, "tokenizer", bos if bos and text.startswith(bos) else "")
        warnings.append("template.use_tokenizer_template is set but the model file has no "
                        "tokenizer.chat_template; the messages are joined without a template")
        return PromptResult(_join_messages_raw(config, messages, warnings), warnings, "raw")

    mode = function_mode(request)
    should_use_fn = bool(functions) and (mode.mode != "none" or bool(mode.name))
    # Go's input.Functions stays nil unless `functions` is given or a tool is appended.
    funcs: list[Function] | None = functions if functions or request.get("functions") is not None else None
    grammar_from_functions = False
    tools = tool_settings(config)
    if should_use_fn and (tools.grammar or any(f.Strict for f in functions)):
        grammar_from_functions = True
        # `required` forces a real call: the no-action function is not offered (LocalAI
        # filters by the name "required" here and offers nothing at all).
        if tools.no_action and mode.mode != "required":
            funcs = list(functions) + [_no_action(tools)]
    if mode.name and funcs is not None:
        funcs = [f for f in funcs if f.Name == mode.name]

    grammar_set = bool(getattr(config, "grammar", "") or request.get("grammar")) or grammar_from_functions \
        or wants_json_response(request)

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


def _join(config: Any, parts: list[str]) -> str:
    sep = _t(config, "join_chat_messages_by_character")
    return ("\n" if sep is None else sep).join(parts)


def _join_messages_raw(config: Any, messages: list[dict], warnings: list[str]) -> str:
    counters = MediaCounters()
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
    counters = MediaCounters()
    suppress = False
    used = False
    mess: list[str] = []
    last = len(messages) - 1
    for i, m in enumerate(messages):
        role = m.get("role") or ""
        has_fc = m.get("function_call") is not None
        tool_calls = decode_tool_calls(m.get("tool_calls"))
        if (has_fc or tool_calls is not None) and role == "assistant" and roles.get("assistant_function_call"):
            role = "assistant_function_call"
        r = roles.get(role) or ""
        if not isinstance(r, str):
            r = str(r)
        text = decode_message_content(m.get("content"), multimodal=multimodal, counters=counters,
                                      warnings=warnings)
        content_exists = text != ""
        function_call = go_json_value(m.get("function_call"))
        fcall: Any = tool_calls if tool_calls else function_call

        content = ""
        if chat_message:
            data = ChatMessageTemplateData(
                SystemPrompt=system_prompt, Role=r, RoleName=role, FunctionName=m.get("name") or "",
                Content=text, MessageIndex=i, Function=grammar_set and i == last, FunctionCall=fcall,
                LastMessage=i == last)
            try:
                rendered, file = evaluate_template(models_path, chat_message, data)
            except (TemplateError, TemplateOutsidePath, OSError) as e:
                warnings.append(f"template.chat_message failed for message {i} (role {role!r}): {e}; "
                                f"LocalAI then formats this message as role prefix + content")
            else:
                if rendered == "":
                    warnings.append(f"template.chat_message rendered nothing for message {i} "
                                    f"(role {role!r}); LocalAI drops the message")
                    continue
                if not used:
                    w = literal_name_warning("template.chat_message", chat_message, file, models_path)
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
