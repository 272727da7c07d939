"""GGUF `tokenizer.chat_template` (Hugging Face Jinja) rendering, set up the way llama-cpp-python does it."""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from compat.errors import RequestError


@dataclass(frozen=True)
class TokenizerTemplate:
    """A model's own chat template and the text of its BOS/EOS tokens."""

    template: str
    bos_token: str = ""
    eos_token: str = ""


class ChatTemplateError(RequestError):
    """The GGUF chat template failed to parse or raised while rendering."""


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(message)


def _strftime_now(format_string: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.now().strftime(format_string)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Hugging Face's tojson: no HTML escaping and insertion order, unlike Jinja's built-in.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_env = _environment()
_lock = threading.Lock()
_compiled: dict[str, jinja2.Template] = {}


def _template(source: str) -> jinja2.Template:
    with _lock:
        t = _compiled.get(source)
    if t is None:
        try:
            t = _env.from_string(source)
        except jinja2.TemplateError as e:
            raise ChatTemplateError(f"the GGUF chat template does not parse: {e}") from e
        with _lock:
            _compiled.setdefault(source, t)
    return t


def _template_messages(template: str, messages: list[dict]) -> list[dict]:
    """Messages as chat templates read them: a template that writes `arguments | tojson`
    expects a tool call's arguments as an object, while OpenAI clients send a JSON string
    (llama-server converts them the same way)."""
    if not re.search(r"arguments\s*\|\s*tojson", template):
        return messages
    out = []
    for m in messages:
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if not isinstance(calls, list):
            out.append(m)
            continue
        fixed = []
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(fn, dict) and isinstance(args, str):
                try:
                    parsed = json.loads(args)
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict):
                    call = {**call, "function": {**fn, "arguments": parsed}}
            fixed.append(call)
        out.append({**m, "tool_calls": fixed})
    return out


def render_chat_template(tt: TokenizerTemplate, messages: list[dict], *, tools: Any = None,
                         functions: Any = None, tool_choice: Any = None, function_call: Any = None,
                         add_generation_prompt: bool = True, extra: dict[str, Any] | None = None) -> str:
    """The prompt text; BOS/EOS appear only where the template writes them (no extra BOS needed).
    `extra` are further template variables (chat_template_kwargs: enable_thinking, ...)."""
    try:
        return _template(tt.template).render(
            **(extra or {}),
            messages=_template_messages(tt.template, messages), bos_token=tt.bos_token, eos_token=tt.eos_token,
            add_generation_prompt=add_generation_prompt, tools=tools, functions=functions,
            tool_choice=tool_choice, function_call=function_call,
            raise_exception=_raise_exception, strftime_now=_strftime_now,
        )
    except ChatTemplateError:
        raise
    except jinja2.TemplateError as e:
        raise ChatTemplateError(f"the GGUF chat template failed: {e}") from e
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise ChatTemplateError(f"the GGUF chat template failed: {type(e).__name__}: {e}") from e


def read_gguf_tokenizer_template(path: str) -> TokenizerTemplate | None:
    """tokenizer.chat_template and the BOS/EOS token texts from a GGUF file (None without a template)."""
    from gguf import GGUFReader  # the gguf package only reads the file; no llama.cpp

    reader = GGUFReader(path, "r")

    def field_value(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        return f.contents()

    template = field_value("tokenizer.chat_template")
    if not isinstance(template, str):
        return None
    tokens = field_value("tokenizer.ggml.tokens")

    def token_text(key: str) -> str:
        tid = field_value(key)
        if isinstance(tid, int) and isinstance(tokens, list) and 0 <= tid < len(tokens):
            t = tokens[tid]
            return t if isinstance(t, str) else ""
        return ""

    return TokenizerTemplate(template, token_text("tokenizer.ggml.bos_token_id"),
                             token_text("tokenizer.ggml.eos_token_id"))
