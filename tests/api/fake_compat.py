"""The compat functions the route tests use: the real merge/postprocess, a transparent prompt builder.

The prompt builder is a stand-in so route tests can assert exactly what reached the engine;
compat.prompt has its own tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compat.postprocess import StreamPostprocessor, postprocess_reply
from compat.request_params import (
    RequestFieldError,
    ignored_request_fields,
    merge_generation_params,
    unknown_request_fields,
)
from server.api.hooks import CompatFunctions


@dataclass
class Prompt:
    text: str
    warnings: list[str] = field(default_factory=list)
    source: str = "fake"


@dataclass(frozen=True)
class Template:
    template: str
    bos_token: str
    eos_token: str


def build_chat_prompt(config: Any, models_path: Any, request: dict, *, tokenizer_template: Any = None) -> Prompt:
    text = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in request["messages"])
    if tokenizer_template is not None:
        return Prompt(tokenizer_template.bos_token + text, source="tokenizer")
    return Prompt(text, warnings=["fake warning"] if "warn" in text else [])


def build_completion_prompt(config: Any, models_path: Any, prompt: str, request: dict) -> Prompt:
    return Prompt(prompt)


COMPAT = CompatFunctions(
    build_chat_prompt=build_chat_prompt,
    build_completion_prompt=build_completion_prompt,
    tokenizer_template=Template,
    merge_generation_params=merge_generation_params,
    unknown_request_fields=unknown_request_fields,
    finetune=postprocess_reply,
    stream_finetuner=StreamPostprocessor,
    ignored_request_fields=ignored_request_fields,
    request_errors=(RequestFieldError,),
)
