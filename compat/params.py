"""Generation parameters: what a merged request asks the engine to do (pure data, no llama.cpp)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampler settings. temperature <= 0 means greedy."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # None -> a random seed chosen per request (LocalAI's seed -1).
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    ignore_eos: bool = False
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    grammar: str | None = None


@dataclass(frozen=True)
class GenerationParams:
    """Everything the engine needs besides the prompt."""

    sampling: SamplingParams = field(default_factory=SamplingParams)
    # None -> until end-of-generation or the context is full.
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    # Log-probabilities of each generated token and of this many alternatives (None: none).
    logprobs: int | None = None
    # Special tokens rendered as their text (markers a reply is parsed by: <tool_call>,
    # <think>...); other control tokens render as nothing.
    visible_specials: tuple[str, ...] = ()
