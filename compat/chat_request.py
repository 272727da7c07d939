"""Decoding an OpenAI chat/completion body the way LocalAI does before templating (content, tools, metadata)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from compat.errors import RequestError
from compat.gotemplate import TemplateError, go_json_value
from compat.prompt_data import (
    DEFAULT_MULTIMODAL_TEMPLATE,
    METADATA_ALWAYS_DELETED,
    METADATA_DELETED_WHEN_NONEMPTY,
    Function,
    FunctionCall,
    MultimodalContent,
    MultimodalTemplateData,
    ToolCall,
)
from compat.prompt_templates import template_cache


class PromptRequestError(RequestError):
    """The request body cannot be turned into a prompt (wrong types where LocalAI's decode fails)."""


def _media_ok(url: Any) -> bool:
    # LocalAI skips a part whose URL it cannot turn into base64 (data: URIs; http(s) is downloaded).
    if not isinstance(url, str):
        return False
    return url.startswith(("http://", "https://")) or (url.startswith("data:") and ";base64," in url)


def _url_of(part: dict, key: str) -> Any:
    v = part.get(key)
    return v.get("url") if isinstance(v, dict) else None


@dataclass
class MediaCounters:
    images: int = 0
    videos: int = 0
    audios: int = 0


def decode_message_content(content: Any, *, multimodal: str, counters: MediaCounters | None = None,
                           apply_multimodal: bool = True, warnings: list[str] | None = None) -> str:
    """LocalAI's StringContent: string as is, text parts concatenated (+ multimodal template), else ""."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    counters = counters or MediaCounters()
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
        return template_cache.get(multimodal or DEFAULT_MULTIMODAL_TEMPLATE).execute(data)
    except TemplateError as e:
        # LocalAI ignores the error and keeps what was rendered (nothing, for a parse error).
        if warnings is not None:
            warnings.append(f"template.multimodal failed ({e}); LocalAI then uses the partial output "
                            f"(empty here) as the message content")
        return getattr(e, "partial_output", "") or ""


def decode_tool_calls(value: Any) -> list[ToolCall] | None:
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


def request_functions(request: dict) -> list[Function]:
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
                            Parameters=go_json_value(params) if params is not None else None))
    return out


@dataclass
class FunctionMode:
    mode: str = ""   # "", "none", "auto", "required", ...
    name: str = ""   # a specific function to call


def function_mode(request: dict) -> FunctionMode:
    fc = request.get("function_call")
    tc = request.get("tool_choice")
    if tc is not None:
        if isinstance(tc, str) and tc not in ("", "auto"):
            fc = tc
            if tc.strip().startswith("{"):
                try:
                    nested = json.loads(tc)
                except ValueError:
                    nested = None
                if isinstance(nested, dict) and tool_choice_name(nested):
                    fc = {"name": tool_choice_name(nested)}
        elif isinstance(tc, dict) and tool_choice_name(tc):
            fc = {"name": tool_choice_name(tc)}
    if isinstance(fc, str):
        return FunctionMode(mode=fc)
    if isinstance(fc, dict):
        name = fc.get("name")
        return FunctionMode(name=name if isinstance(name, str) else "")
    return FunctionMode()


def tool_choice_name(m: dict) -> str:
    if m.get("type") != "function":
        return ""
    fn = m.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]:
        return fn["name"]
    return m["name"] if isinstance(m.get("name"), str) else ""


def request_metadata(request: dict, *, chat: bool) -> dict[str, str] | None:
    """The request metadata templates see; the chat handler first deletes the keys it consumes."""
    md = request.get("metadata")
    if md is None:
        return None
    if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
        raise PromptRequestError("request field 'metadata' must be an object of strings")
    md = dict(md)
    if not chat:
        return md
    for k in METADATA_ALWAYS_DELETED:
        md.pop(k, None)
    for k in METADATA_DELETED_WHEN_NONEMPTY:
        if md.get(k):
            del md[k]
    return md


def request_reasoning_effort(request: dict) -> str:
    v = request.get("reasoning_effort")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise PromptRequestError("request field 'reasoning_effort' must be a string")
    return v


def request_messages(request: dict) -> list[dict]:
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


def wants_json_response(request: dict) -> bool:
    rf = request.get("response_format")
    kind = rf.get("type") if isinstance(rf, dict) else rf
    return kind in ("json_object", "json_schema")


def completion_prompts(request: dict) -> list[str]:
    """The prompt strings of a completion request (a string, or the strings of a list)."""
    p = request.get("prompt")
    if isinstance(p, str):
        return [p]
    if isinstance(p, list):
        return [s for s in p if isinstance(s, str)]
    return []
