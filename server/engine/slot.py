"""A slot: one llama sequence id, the request it serves and the tokens its KV cache holds."""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable

from compat.params import GenerationParams
from server.engine.detok import TextAssembler
from server.engine.types import Event


class SlotState(enum.Enum):
    IDLE = "idle"
    PROMPT = "processing_prompt"  # prompt chunks still to decode
    GENERATING = "generating"


@dataclass(eq=False)
class Job:
    """One admitted generation request, as the engine thread sees it."""

    rid: int
    prompt: list[int]
    params: GenerationParams
    sink: Callable[[Event], None]
    arrived: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Slot:
    seq_id: int
    state: SlotState = SlotState.IDLE
    job: Job | None = None
    # Tokens whose KV cells this sequence holds, in position order: cache[i] is at pos i.
    cache: list[int] = field(default_factory=list)
    # Next prompt index to decode while PROMPT.
    n_prompt_fed: int = 0
    n_cached_prompt: int = 0
    # Token sampled last step, fed at position len(cache) in the next batch.
    pending_token: int | None = None
    n_generated: int = 0
    # Row in the current batch whose logits this slot samples; -1 when none.
    i_batch: int = -1
    sampler: object | None = None
    assembler: TextAssembler | None = None
    # An idle slot's cache moved to host memory (llama_state_seq_get_data) so its cells stop
    # costing every other sequence attention time in a unified KV cache; restored on reuse.
    saved_tokens: list[int] = field(default_factory=list)
    saved_state: object | None = None
    started: float = 0.0
    last_used: float = 0.0

    @property
    def known_tokens(self) -> list[int]:
        """The prefix this slot can offer a new request: in the KV cache or saved in RAM."""
        return self.cache if self.cache else self.saved_tokens

    @property
    def busy(self) -> bool:
        return self.state is not SlotState.IDLE

    def remaining_prompt(self) -> int:
        return len(self.job.prompt) - self.n_prompt_fed if self.job else 0

    def assign(self, job: Job, n_keep: int) -> None:
        """Take a job, keeping the first n_keep cached tokens (a shared prefix)."""
        self.job = job
        del self.cache[n_keep:]
        self.n_prompt_fed = n_keep
        self.n_cached_prompt = n_keep
        self.pending_token = None
        self.n_generated = 0
        self.i_batch = -1
        self.state = SlotState.PROMPT
        self.started = time.monotonic()

    def release(self) -> None:
        self.job = None
        self.state = SlotState.IDLE
        self.pending_token = None
        self.i_batch = -1
        self.sampler = None
        self.assembler = None
        self.last_used = time.monotonic()


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
