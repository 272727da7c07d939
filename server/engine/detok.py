"""Token bytes -> final text: UTF-8 completion, stop strings across token boundaries, holdback."""
from __future__ import annotations

import codecs
from dataclasses import dataclass


def partial_stop_overlap(text: str, stop: str) -> int:
    """Length of the longest proper prefix of `stop` that `text` ends with."""
    for k in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0


@dataclass
class StopHit:
    # Index in the whole generated text where the stop string starts.
    position: int
    stop: str


class TextAssembler:
    """Turns the byte pieces of one generation into text that is safe to send.

    Like llama-server's process_token: incomplete UTF-8 is held back until complete, a tail
    that could be the start of a stop string is held back, and a completed stop string ends
    the text before it (the stop string itself is never sent). Unlike llama-server, the stop
    search looks at every position a new piece could have completed, so a stop string split
    over many short tokens is found too.
    """

    def __init__(self, stops: tuple[str, ...] | list[str] = ()):
        self._stops = tuple(s for s in stops if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Whether the decoder holds the first bytes of a character (then every piece goes through it).
        self._decoding = False
        self._text = ""
        self._sent = 0
        self.stopped: StopHit | None = None
        # Per-token data (logprobs) waiting for its token's text to go out: (start, end, item).
        self._pending: list[tuple[int, int, object]] = []
        self.released: list[object] = []

    @property
    def text(self) -> str:
        """All text decided so far (what the non-stream answer is, once finished)."""
        return self._text

    def take_released(self) -> list[object]:
        """The per-token items whose text went out with the last feed/finish."""
        out, self.released = self.released, []
        return out

    def feed(self, piece: bytes, item: object = None) -> str:
        """Add one token's bytes (and an item to release with its text); return the text newly
        safe to send (may be "")."""
        if self.stopped is not None:
            return ""
        if not (self._stops or self._pending or self._decoding) and item is None:
            # The common case, once per token: no stop strings, no logprobs, whole characters.
            try:
                new = piece.decode("utf-8")
            except UnicodeDecodeError:
                pass  # part of a character (or invalid): the incremental decoder below
            else:
                self._text += new
                return self._flush_to(len(self._text))
        before = len(self._text)
        self._text += self._decoder.decode(piece)
        self._decoding = bool(self._decoder.getstate()[0])
        if item is not None:
            self._pending.append((before, len(self._text), item))
        hit = self._find_stop(before)
        if hit is not None:
            self.stopped = hit
            self._text = self._text[: hit.position]
            return self._flush_to(len(self._text))
        hold = max((partial_stop_overlap(self._text, s) for s in self._stops), default=0)
        return self._flush_to(len(self._text) - hold)

    def finish(self) -> str:
        """Generation ended without a stop string: release what was held back.

        Bytes of an incomplete UTF-8 character at the very end are dropped: they can
        never become a character.
        """
        if self.stopped is None:
            return self._flush_to(len(self._text))
        return ""

    def _find_stop(self, before: int) -> StopHit | None:
        best: StopHit | None = None
        for s in self._stops:
            # A stop completed by this piece starts at most len(s)-1 chars before it.
            start = max(0, before - len(s) + 1)
            pos = self._text.find(s, start)
            if pos >= 0 and (best is None or pos < best.position):
                best = StopHit(pos, s)
        return best

    def _flush_to(self, end: int) -> str:
        if self._pending:
            # A token goes with its text: once all of it is out, or, when a stop string cut the
            # text, when any of it is.
            cut = self.stopped is not None
            keep = []
            for start, stop, item in self._pending:
                if stop <= end or (cut and start < end) or (not cut and stop == start and start <= end):
                    self.released.append(item)
                elif not cut:
                    keep.append((start, stop, item))
            self._pending = keep
        if end <= self._sent:
            return ""
        out = self._text[self._sent : end]
        self._sent = end
        return out
