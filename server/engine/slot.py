"""Per-request state (Job) and per-sequence state (Slot: a llama sequence id and the KV cells it holds)."""
from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from compat.params import GenerationParams
from server.engine.detok import TextAssembler


class SlotState(enum.Enum):
    IDLE = "idle"
    # Admitted; waiting for another slot to decode a prompt prefix it will share (forked).
    WAITING_PREFIX = "waiting_prefix"
    PROMPT = "processing_prompt"  # prompt chunks still to decode
    GENERATING = "generating"


@dataclass(eq=False)
class Job:
    """One generation request, from admission to its end, as the engine thread sees it."""

    rid: int
    prompt: list[int]
    params: GenerationParams
    arrived: float = field(default_factory=time.monotonic)
    # Next prompt index to decode; prompt tokens whose cells were reused (own cache or shared).
    n_fed: int = 0
    n_cached: int = 0
    n_generated: int = 0
    # Tokens accepted since the last text went out (the next TextDelta carries their count).
    n_unsent: int = 0
    # Token sampled last step, fed at position len(slot.cache) in the next batch.
    pending_token: int | None = None
    # Row in the current batch whose logits this job samples; -1 when none.
    i_batch: int = -1
    # Engine-owned: the llama sampler chain and the text assembler (built at admission).
    sampler: Any = None
    assembler: TextAssembler | None = None
    # Special tokens this request renders as text (markers its reply is parsed by).
    visible: frozenset[int] = frozenset()
    first_token_at: float = 0.0

    def remaining_prompt(self) -> int:
        return len(self.prompt) - self.n_fed


class Segment(NamedTuple):
    """Positions [start, end) of a sequence whose KV cells were written by `origin`.

    A unified KV cache lets several sequences refer to the same cells (llama_memory_seq_cp);
    two slots whose segments share an origin and a position share that cell. (A NamedTuple:
    a generating slot makes a new one every step, five times faster than a frozen dataclass.)
    """

    origin: int
    start: int
    end: int


_origins = itertools.count(1)


@dataclass(eq=False)
class Slot:
    seq_id: int
    state: SlotState = SlotState.IDLE
    job: Job | None = None
    # Tokens whose KV cells this sequence holds, in position order: cache[i] is at pos i.
    cache: list[int] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    # Cells written from now on get this origin (a fresh one whenever the sequence is rebuilt).
    origin: int = field(default_factory=lambda: next(_origins))
    # An idle slot's cache moved to host memory (llama_state_seq_get_data) so its cells stop
    # costing every other sequence attention time in a unified KV cache; restored on reuse.
    saved_tokens: list[int] = field(default_factory=list)
    saved_state: Any = None
    saved_bytes: int = 0
    # While WAITING_PREFIX: the slot whose first `fork_n` cells this one will share.
    fork_src: "Slot | None" = None
    fork_n: int = 0
    last_used: float = 0.0

    @property
    def known_tokens(self) -> list[int]:
        """The prefix this slot can offer a new request: in the KV cache or saved in RAM."""
        return self.cache if self.cache else self.saved_tokens

    @property
    def busy(self) -> bool:
        return self.state is not SlotState.IDLE

    # -- KV bookkeeping (what the engine did to this sequence's cells) ----------------------
    def truncate(self, n: int) -> None:
        """Keep the first n cached tokens (seq_rm(seq, n, -1))."""
        del self.cache[n:]
        self.segments = _clip(self.segments, n)
        self.origin = next(_origins)

    def clear(self) -> None:
        self.truncate(0)

    def extend(self, tokens: list[int]) -> None:
        """Tokens decoded into this sequence at the next positions."""
        start = len(self.cache)
        self.cache.extend(tokens)
        end = len(self.cache)
        last = self.segments[-1] if self.segments else None
        if last is not None and last.origin == self.origin and last.end == start:
            self.segments[-1] = Segment(self.origin, last.start, end)
        else:
            self.segments.append(Segment(self.origin, start, end))

    def share_from(self, src: "Slot", n: int) -> None:
        """This sequence now refers to src's first n cells (seq_rm(dst); seq_cp(src, dst, 0, n))."""
        self.cache = list(src.cache[:n])
        self.segments = _clip(src.segments, n)
        self.origin = next(_origins)

    def drop_saved(self) -> None:
        self.saved_state, self.saved_tokens, self.saved_bytes = None, [], 0


def _clip(segments: list[Segment], n: int) -> list[Segment]:
    out = []
    for s in segments:
        if s.start >= n:
            break
        out.append(s if s.end <= n else Segment(s.origin, s.start, n))
    return out


def used_cells(slots: list[Slot]) -> int:
    """Distinct KV cells the slots' sequences hold (shared cells counted once)."""
    by_origin: dict[int, list[tuple[int, int]]] = {}
    for slot in slots:
        for s in slot.segments:
            by_origin.setdefault(s.origin, []).append((s.start, s.end))
    total = 0
    for spans in by_origin.values():
        spans.sort()
        cur_start, cur_end = spans[0]
        for start, end in spans[1:]:
            if start > cur_end:
                total += cur_end - cur_start
                cur_start, cur_end = start, end
            elif end > cur_end:
                cur_end = end
        total += cur_end - cur_start
    return total


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
