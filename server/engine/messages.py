"""The typed messages between an engine and its clients: the same ones on the engine's queue and over a worker's pipe."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from server.engine.types import Event, GenerateRequest, ModelInfo, TextDelta
from server.errors import LlamaslotsError

# -- to the engine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    rid: int
    request: GenerateRequest


@dataclass(frozen=True)
class Cancel:
    rid: int


@dataclass(frozen=True)
class Tokenize:
    text: str
    add_special: bool
    parse_special: bool


@dataclass(frozen=True)
class Detokenize:
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Embed:
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Stats:
    """Slot states and counters, read on the engine thread."""


Query = Union[Tokenize, Detokenize, Embed, Stats]


@dataclass(frozen=True)
class Call:
    """A query answered between steps by one CallDone with the same id."""

    cid: int
    query: Query


@dataclass(frozen=True)
class Stop:
    """End the engine: running requests end as "cancelled", then the model is freed."""


Command = Union[Submit, Cancel, Call, Stop]

# -- from the engine -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    info: ModelInfo


@dataclass(frozen=True)
class LoadProgress:
    """How far loading the model got (0..1), sent before Ready."""

    fraction: float


@dataclass(frozen=True)
class LoadFailed:
    error: LlamaslotsError


@dataclass(frozen=True)
class StepStats:
    """What only the engine knows, sent with the step's events (no extra messages). The token
    counts are totals since the engine started: the front-end keeps only the latest StepStats
    and reads it when /metrics is scraped, with nothing to add up per step."""

    busy_slots: int = 0
    waiting: int = 0
    kv_used: int = 0
    prompt_tokens_total: int = 0  # prompt tokens decoded (cache hits excluded)
    sampled_total: int = 0  # tokens sampled

    def __reduce__(self):
        # Sent every step: plain arguments pickle several times faster than a dataclass's state.
        return (StepStats, (self.busy_slots, self.waiting, self.kv_used, self.prompt_tokens_total,
                            self.sampled_total))


@dataclass(frozen=True)
class StepEvents:
    """Every event of one engine step: one message per step, not per token.

    Text, the common case, travels as plain (request id, text) tuples (cheap to pickle); a
    request's text of a step comes before its end, so `texts` are delivered before `ends`.
    """

    texts: list[tuple] = field(default_factory=list)  # (rid, text) or (rid, text, logprobs, n_tokens)
    ends: list[tuple[int, Event]] = field(default_factory=list)
    stats: StepStats | None = None

    def events(self) -> list[tuple[int, Event]]:
        return [(t[0], TextDelta(*t[1:])) for t in self.texts] + self.ends

    def __reduce__(self):
        return (StepEvents, (self.texts, self.ends, self.stats))

    def plain(self) -> tuple | None:
        """This step in builtin types (server.wire's fast form), when it ends no request: the
        common step. (Text with logprobs holds objects; the wire then pickles the step.)"""
        if self.ends or self.stats is None:
            return None
        return (self.texts, self.stats.__reduce__()[1])

    @staticmethod
    def from_plain(data: tuple) -> "StepEvents":
        texts, stats = data
        return StepEvents(texts, [], StepStats(*stats))


@dataclass(frozen=True)
class CallDone:
    cid: int
    value: Any = None
    error: LlamaslotsError | None = None


@dataclass(frozen=True)
class Stopped:
    """The engine ended and freed the model."""


Message = Union[Ready, LoadProgress, LoadFailed, StepEvents, CallDone, Stopped]
