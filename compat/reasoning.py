"""Reasoning: LocalAI's `reasoning:` config and `reasoning_effort`, and the split of a reply into
reasoning and content (<think>...</think> and the other markers LocalAI knows), whole or streamed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compat.errors import RequestError

# LocalAI's defaultReasoningTagPairs (pkg/reasoning), in its order.
DEFAULT_TAG_PAIRS: tuple[tuple[str, str], ...] = (
    ("<|START_THINKING|>", "<|END_THINKING|>"),
    ("<|inner_prefix|>", "<|inner_suffix|>"),
    ("<seed:think>", "</seed:think>"),
    ("<think>", "</think>"),
    ("<|think|>", "<|end|><|begin|>assistant<|content|>"),
    ("<|channel>thought", "<channel|>"),
    ("<thinking>", "</thinking>"),
    ("[THINK]", "[/THINK]"),
)
EFFORTS = ("none", "minimal", "low", "medium", "high")
_SPACE = " \t\r\n"


@dataclass(frozen=True)
class ReasoningSettings:
    """How one request's reasoning is treated."""

    # Split reasoning out of the content (False: the reply is left as the model wrote it).
    split: bool = True
    # strip_reasoning_only: the markers and the reasoning are removed, nothing is returned.
    keep: bool = True
    # A start marker the prompt leaves open means the reply begins inside reasoning.
    prefill: bool = True
    tag_pairs: tuple[tuple[str, str], ...] = DEFAULT_TAG_PAIRS
    # What the request asked for ("" when nothing): goes to templates as .ReasoningEffort.
    effort: str = ""

    @property
    def markers(self) -> tuple[str, ...]:
        """Every marker text, so the engine renders them even when they are control tokens."""
        return tuple(dict.fromkeys(t for pair in self.tag_pairs for t in pair))


def _bool(value: Any) -> bool:
    # check-config reports a value of the wrong type; serving reads it as unset.
    return value is True


def reasoning_settings(config: Any, request: dict) -> ReasoningSettings:
    """The model's `reasoning:` block (disable, disable_reasoning_tag_prefill,
    strip_reasoning_only, tag_pairs, thinking_start_tokens) with the request's
    `reasoning_effort` over the model's: "none" turns reasoning off, as in LocalAI."""
    block = getattr(config, "reasoning", None) or {}
    if not isinstance(block, dict):
        block = {}
    disable = _bool(block.get("disable"))
    no_prefill = _bool(block.get("disable_reasoning_tag_prefill"))
    strip_only = _bool(block.get("strip_reasoning_only"))
    pairs: list[tuple[str, str]] = []
    for pair in block.get("tag_pairs") or []:
        if isinstance(pair, dict) and isinstance(pair.get("start"), str) and isinstance(pair.get("end"), str):
            pairs.append((pair["start"], pair["end"]))
    effort = request.get("reasoning_effort")
    if effort is None:
        effort = getattr(config, "reasoning_effort", "") or ""
    if not isinstance(effort, str) or (effort and effort not in EFFORTS):
        raise RequestError(f"reasoning_effort must be one of {', '.join(EFFORTS)}, got {effort!r}")
    if effort == "none":
        disable = True
    return ReasoningSettings(split=not disable, keep=not strip_only, prefill=not no_prefill,
                             tag_pairs=tuple(pairs) + DEFAULT_TAG_PAIRS, effort=effort)


def open_reasoning(prompt: str, settings: ReasoningSettings) -> str | None:
    """The end marker to wait for when the prompt leaves a start marker open at its end (a
    template that starts the model's reply with <think>), else None."""
    if not (settings.split and settings.prefill):
        return None
    tail = prompt.rstrip(_SPACE)
    for start, end in settings.tag_pairs:
        if tail.endswith(start):
            return end
    return None


class ReasoningSplitter:
    """Reasoning and content of one reply, as the text arrives.

    A start marker begins reasoning, its end marker ends it; text that could be the start of
    a marker is held back until it is known not to be. Whitespace right inside the markers
    and right after a reasoning block is dropped; several blocks are joined by a blank line.
    A block the reply never closes is reasoning to the end (the stream cannot take back what
    it sent, so a whole answer is split the same way).
    """

    def __init__(self, settings: ReasoningSettings, inside: str | None = None):
        self.settings = settings
        self._buf = ""
        self._end = inside  # the end marker while inside a block
        self._at_block_start = inside is not None
        self._after_block = False
        self._any_reasoning = False
        self._ws = ""  # whitespace held inside a block (trailing, maybe before its end)
        # Where the blocks are in the text fed so far, markers included: (start, end), the
        # last one open (end None) while inside. Reasoning tokens are counted against them.
        self.fed = 0
        self._base = 0  # position of _buf[0] in the text fed
        self.blocks: list[tuple[int, int | None]] = [(0, None)] if inside is not None else []

    def _advance(self, n: int) -> None:
        self._buf = self._buf[n:]
        self._base += n

    def weight_inside(self, spans: list[tuple[int, int, int]]) -> float:
        """The weights of text spans (start, end, weight) that fall in reasoning blocks, each
        shared by characters; an empty span counts whole when it sits inside a block. Spans come
        in text order, as the blocks do: one sweep over both."""
        total, i, blocks = 0.0, 0, self.blocks
        for start, end, weight in spans:
            while i < len(blocks) and (block_end := blocks[i][1]) is not None and block_end <= start:
                i += 1  # blocks that end before this span cannot hold any later span either
            if end <= start:
                if i < len(blocks) and blocks[i][0] <= start:
                    total += weight
                continue
            inside, j = 0, i
            while j < len(blocks) and blocks[j][0] < end:
                b_end = blocks[j][1]
                inside += max(0, min(end, b_end if b_end is not None else end) - max(start, blocks[j][0]))
                j += 1
            total += weight * inside / (end - start)
        return total

    def feed(self, text: str) -> tuple[str, str]:
        if not self.settings.split:
            return "", text
        self._buf += text
        self.fed += len(text)
        return self._drain(final=False)

    def finish(self) -> tuple[str, str]:
        if not self.settings.split:
            return "", ""
        return self._drain(final=True)

    def _drain(self, final: bool) -> tuple[str, str]:
        reasoning: list[str] = []
        content: list[str] = []
        while self._buf:
            if self._end is not None:
                pos = self._buf.find(self._end)
                if pos >= 0:
                    self._think(self._buf[:pos], reasoning, closing=True)
                    self._advance(pos + len(self._end))
                    self.blocks[-1] = (self.blocks[-1][0], self._base)
                    self._end = None
                    self._after_block = True
                    continue
                keep = 0 if final else _partial(self._buf, (self._end,))
                self._think(self._buf[:len(self._buf) - keep], reasoning, closing=False)
                self._advance(len(self._buf) - keep)
                break
            if self._after_block:
                stripped = self._buf.lstrip(_SPACE)
                self._advance(len(self._buf) - len(stripped))
                if not stripped and not final:
                    break
                self._after_block = False
                continue
            hit = self._first_start()
            if hit is not None:
                pos, start, end = hit
                content.append(self._buf[:pos])
                self.blocks.append((self._base + pos, None))
                self._advance(pos + len(start))
                self._end = end
                self._at_block_start = True
                continue
            keep = 0 if final else _partial(self._buf, tuple(s for s, _ in self.settings.tag_pairs))
            content.append(self._buf[:len(self._buf) - keep])
            self._advance(len(self._buf) - keep)
            break
        out_reasoning = "".join(reasoning) if self.settings.keep else ""
        return out_reasoning, "".join(content)

    def _first_start(self) -> tuple[int, str, str] | None:
        best = None
        for start, end in self.settings.tag_pairs:
            pos = self._buf.find(start)
            if pos >= 0 and (best is None or pos < best[0]):
                best = (pos, start, end)
        return best

    def _think(self, text: str, out: list[str], *, closing: bool) -> None:
        if closing and not text.strip(_SPACE):
            self._ws = ""  # whitespace before the end marker goes with it
            return
        if self._at_block_start:
            text = text.lstrip(_SPACE)
            if not text:
                return
            if self._any_reasoning:
                out.append("\n\n")
            self._at_block_start = False
        if not text:
            return
        text = self._ws + text
        self._ws = ""
        body = text.rstrip(_SPACE)
        if not closing:
            self._ws = text[len(body):]
        if body:
            out.append(body)
            self._any_reasoning = True


def _partial(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of a marker."""
    best = 0
    for m in markers:
        for k in range(min(len(m) - 1, len(text)), best, -1):
            if text.endswith(m[:k]):
                best = k
                break
    return best


def split_reasoning(text: str, settings: ReasoningSettings, inside: str | None = None) -> tuple[str, str]:
    """(reasoning, content) of a whole reply: what a stream of it would give."""
    splitter = ReasoningSplitter(settings, inside)
    r1, c1 = splitter.feed(text)
    r2, c2 = splitter.finish()
    return r1 + r2, c1 + c2
