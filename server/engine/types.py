"""The engine's boundary: what goes in (a generation/embedding request) and what comes out (events)."""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Literal, Union

from compat.params import GenerationParams
from server.errors import LlamaslotsError


@dataclass(frozen=True)
class GenerateRequest:
    # Text is tokenized by the engine thread (parse_special: template text may hold
    # <|im_start|> and friends); a token list is taken as is.
    prompt: Union[str, list[int]]
    params: GenerationParams = field(default_factory=GenerationParams)
    add_special: bool = True


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability (log-softmax of the model's logits, before any
    sampling filter) and the most likely alternatives at its position."""

    token: str
    bytes: builtins.bytes
    logprob: float
    top: tuple[tuple[str, builtins.bytes, float], ...] = ()


@dataclass(frozen=True)
class TextDelta:
    """Newly final text of one request: complete UTF-8, no part of a stop string, with the
    log-probabilities of the tokens it came from when the request asked for them."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()
    # Sampled tokens since the previous delta (held-back text comes out with a later one): the
    # front-end counts reasoning tokens by which part of the reply a delta's text went to.
    n_tokens: int = 1


FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    # Prompt tokens reused from the slot's cache (not decoded again).
    cached_tokens: int = 0
    # Completion tokens spent in reasoning blocks, counted by the front-end where the model's
    # reasoning is split from its content (None: not split, the answer has no such count).
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    usage: Usage


@dataclass(frozen=True)
class Failed:
    error: LlamaslotsError


Event = Union[TextDelta, Finished, Failed]


@dataclass(frozen=True)
class ModelInfo:
    """What the front-end needs to know about a loaded model."""

    n_ctx: int  # total KV cells
    n_ctx_seq: int  # the most one request may use
    n_slots: int
    n_vocab: int
    n_ctx_train: int
    kv_unified: bool
    embeddings: bool
    chat_template: str | None
    bos_text: str
    eos_text: str
    # Sliding-window attention width (0: every layer attends to the whole context).
    n_swa: int = 0
