"""Stand-in compat functions (prompt, merge, postprocess) so route tests do not depend on them."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from compat.params import GenerationParams, SamplingParams
from server.api.hooks import CompatFunctions

KNOWN = {
    "model", "messages", "prompt", "stream", "stream_options", "n", "temperature", "top_p",
    "top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n", "frequency_penalty",
    "presence_penalty", "seed", "stop", "logit_bias", "ignore_eos", "max_tokens",
    "max_completion_tokens", "grammar", "response_format", "mirostat", "user",
}


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
        return Prompt(tokenizer_template.bos_token + text, source="tokenizer_template")
    return Prompt(text, warnings=["fake warning"] if "warn" in text else [])


def build_completion_prompt(config: Any, models_path: Any, prompt: str, request: dict) -> Prompt:
    return Prompt(prompt)


def merge_generation_params(config: Any, request: dict, *, endpoint: str) -> GenerationParams:
    sampling = SamplingParams(temperature=request.get("temperature", 0.8))
    stop = request.get("stop") or ()
    return GenerationParams(
        sampling=sampling,
        max_tokens=request.get("max_tokens"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
    )


def unknown_request_fields(body: dict, endpoint: str) -> list[tuple[str, str | None]]:
    out = []
    for key in body:
        if key not in KNOWN:
            near = difflib.get_close_matches(key, sorted(KNOWN), n=1)
            out.append((key, near[0] if near else None))
    return out


def finetune(config: Any, text: str) -> str:
    for rx in config.cutstrings:
        text = re.sub(rx, "", text)
    for suffix in config.trimsuffix:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
        text = text.strip()
    return text


class StreamFinetuner:
    """Holds everything back until finish(): right for any rule, and what tests can check."""

    def __init__(self, config: Any):
        self.config = config
        self.buf: list[str] = []
        self.active = bool(config.cutstrings or config.trimsuffix)

    def feed(self, delta: str) -> str:
        if not self.active:
            return delta
        self.buf.append(delta)
        return ""

    def finish(self) -> str:
        return finetune(self.config, "".join(self.buf)) if self.active else ""


FAKE_COMPAT = CompatFunctions(
    build_chat_prompt=build_chat_prompt,
    build_completion_prompt=build_completion_prompt,
    tokenizer_template=Template,
    merge_generation_params=merge_generation_params,
    unknown_request_fields=unknown_request_fields,
    finetune=finetune,
    stream_finetuner=StreamFinetuner,
)
