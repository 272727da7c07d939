"""What is wrong with an answer: the field note's failures (leaked tokens, cut answers, errors) as typed findings."""
from __future__ import annotations

import re

import unicodedata
from dataclasses import dataclass
from typing import Iterable, Optional

# Special tokens and turn markers of the common chat formats: none belongs in an answer.
MARKERS = ("</s>", "<s>", "<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>",
           "<|start_header_id|>", "<end_of_turn>", "<start_of_turn>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>",
           "### Human:", "### Assistant:", "<|end|>", "<|user|>", "<|assistant|>")

# Characters an answer may end with when it really ended: closing punctuation of Latin and CJK
# text, quotes, brackets, emoji and symbols. A letter at the very end with finish_reason "stop"
# is how LocalAI's cut answers looked (a heuristic: a list item without a full stop trips it).
_CLOSERS = set(".!?;:…)]}\"'`»”’」』）】》。！？、~*-_|/>")

KINDS = {
    "http_error": "HTTP error",
    "timeout": "timed out",
    "broken_stream": "broken stream",
    "leaked_token": "leaked special token",
    "truncated_stop": "cut off, finish_reason \"stop\"",
    "cut_by_length": "cut by max_tokens",
    "empty": "empty answer",
    "stream_mismatch": "stream and non-stream differ",
}


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of KINDS
    detail: str  # what exactly, quoted

    @property
    def label(self) -> str:
        return KINDS[self.kind]


@dataclass
class Answer:
    """One request's outcome, as the runner saw it."""

    side: str
    prompt: int  # index into the prompts
    repeat: int
    stream: bool
    model: str
    status: Optional[int] = None  # None: no HTTP answer (connection failed, timed out)
    error: str = ""
    timed_out: bool = False
    text: str = ""
    finish_reason: Optional[str] = None
    done: bool = False  # a stream ended with [DONE]
    ttft_s: Optional[float] = None
    total_s: float = 0.0
    completion_tokens: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error and not self.timed_out


def tail(text: str, n: int = 40) -> str:
    t = text.rstrip()
    return ("..." + t[-n:]) if len(t) > n else t


def answer_findings(answer: Answer, *, special_tokens: Iterable[str] = (), wants_json: bool = False) -> list[Finding]:
    """Findings of one answer by itself."""
    if answer.timed_out:
        return [Finding("timeout", f"no complete answer within the timeout ({answer.total_s:.1f}s)")]
    if answer.status != 200 or (answer.error and not answer.stream):
        status = answer.status if answer.status is not None else "no response"
        return [Finding("http_error", f"{status}: {answer.error or 'no error message'}")]
    out: list[Finding] = []
    if answer.stream and (answer.error or not answer.done or answer.finish_reason is None):
        why = answer.error or ("no [DONE]" if not answer.done else "no finish_reason")
        out.append(Finding("broken_stream", why))
    text = answer.text
    markers = list(dict.fromkeys([*MARKERS, *(t for t in special_tokens if t)]))
    leaked = [m for m in markers if m in text]
    if leaked:
        first = min(text.index(m) for m in leaked)
        out.append(Finding("leaked_token", ", ".join(leaked) + f" in {tail(text[: first + 20], 60)!r}"))
    if not text.strip():
        if not out:
            out.append(Finding("empty", f"finish_reason {answer.finish_reason!r}"))
        return out
    if answer.finish_reason == "length":
        out.append(Finding("cut_by_length", f"ends {tail(text)!r}"))
    elif answer.finish_reason == "stop" and not leaked and not wants_json and _ends_mid_sentence(text):
        last = text.rstrip()[-1]
        out.append(Finding("truncated_stop", f"ends with {last!r}, a letter, and no closing "
                                            f"punctuation: {tail(text)!r}"))
    return out


# A short list item, heading or table row needs no full stop ("- Paris", "2) Kyoto", "## Sights");
# a long one ending in a letter is judged like a sentence.
_UNPUNCTUATED_LINE = re.compile(r"\s*(?:[-*+•]\s|\d{1,3}[.)]\s|#{1,6}\s|\|)")
_SHORT_LINE_WORDS = 8


def _ends_mid_sentence(text: str) -> bool:
    last = text.rstrip()[-1]
    if last in _CLOSERS:
        return False
    last_line = text.rstrip().rsplit("\n", 1)[-1]
    if _UNPUNCTUATED_LINE.match(last_line) and len(last_line.split()) <= _SHORT_LINE_WORDS:
        return False
    # A letter: the sentence did not end. A number may end a right answer ("... is 42").
    return unicodedata.category(last)[0] == "L"


def stream_mismatch(streamed: Answer, whole: Answer) -> Optional[Finding]:
    """The same prompt on the same side, streamed and not: with greedy decoding they must agree."""
    complete = streamed.done and streamed.finish_reason is not None  # a broken stream is its own finding
    if not (streamed.ok and whole.ok and complete) or streamed.text == whole.text:
        return None
    i = first_difference(streamed.text, whole.text)
    return Finding("stream_mismatch", f"at character {i}: stream {streamed.text[i:i + 30]!r} vs "
                                      f"non-stream {whole.text[i:i + 30]!r}")


def first_difference(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
