"""LocalAI's reply post-processing (cutstrings, extract_regex, trimspace, trimsuffix), batch and streaming."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

try:  # Python 3.11+
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

# Go's unicode.IsSpace set, which strings.TrimSpace uses. Python's str.strip() differs: it also
# strips \x1c-\x1f, so the set is spelled out.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


class RegexTranslationError(ValueError):
    """A cutstrings/extract_regex pattern that Go rejects or that we cannot reproduce."""


class PostprocessConfig(Protocol):
    cutstrings: Sequence[str] | None
    extract_regex: Sequence[str] | None
    trimspace: Sequence[str] | None
    trimsuffix: Sequence[str] | None


def go_trim_space(s: str) -> str:
    return s.strip(GO_SPACE)


# --- Go RE2 syntax -> Python re -------------------------------------------------------------

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
# Go's \s is ASCII [\t\n\f\r ] (no \v); Python's differs, so it is spelled out.
_GO_S_IN_CLASS = "\\t\\n\\f\\r "


def translate_go_regex(pattern: str) -> str:
    """Rewrite a Go regexp (RE2 syntax) into an equivalent Python `re` pattern.

    Handled: `\\z` (Python `\\Z`), `$` without `(?m)` (Go: end of text only, Python also
    matches before a final newline), `\\s`/`\\S` (Go: ASCII without \\v), `[[:alpha:]]`
    POSIX classes, `\\Q...\\E` literals, `\\x{HHHH}`, `(?<name>` groups. Rejected (Go does
    not accept them, so LocalAI would die on them too): lookarounds, backreferences, `\\Z`.
    Rejected because Python `re` cannot express them: `\\p{...}`/`\\pL`, `(?U)`.
    Compile the result with re.ASCII (Go's \\w, \\d, \\b are ASCII); known remaining
    difference: `(?i)` then folds ASCII letters only.
    """
    multiline = bool(re.search(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)]", pattern))
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise RegexTranslationError(f"trailing backslash in regex {pattern!r}")
            d = pattern[i + 1]
            if d == "Q":
                end = pattern.find("\\E", i + 2)
                lit = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append("".join("\\" + ch if not ch.isalnum() else ch for ch in lit))
                i = n if end < 0 else end + 2
                continue
            if d == "z":
                out.append("\\Z")
            elif d == "Z":
                raise RegexTranslationError(f"Go regexp does not accept \\Z (in {pattern!r}); use \\z")
            elif d in "pP":
                raise RegexTranslationError(
                    f"Unicode classes \\{d} in {pattern!r} are not supported by this implementation")
            elif d.isdigit() and d != "0":
                raise RegexTranslationError(f"Go regexp has no backreferences (\\{d} in {pattern!r})")
            elif d == "s":
                out.append(_GO_S_IN_CLASS if in_class else "[" + _GO_S_IN_CLASS + "]")
            elif d == "S":
                if in_class:
                    raise RegexTranslationError(f"\\S inside a character class is not supported ({pattern!r})")
                out.append("[^" + _GO_S_IN_CLASS + "]")
            elif d == "x" and i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 3)
                if end < 0:
                    raise RegexTranslationError(f"unterminated \\x{{ in {pattern!r}")
                out.append("\\U%08x" % int(pattern[i + 3:end], 16))
                i = end + 1
                continue
            else:
                out.append(c + d)
            i += 2
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2:end] if end > 0 else ""
                neg = name.startswith("^")
                cls = _POSIX_CLASSES.get(name.lstrip("^"))
                if cls is None:
                    raise RegexTranslationError(f"unknown POSIX class [:{name}:] in {pattern!r}")
                if neg:
                    raise RegexTranslationError(f"negated POSIX class [:{name}:] is not supported ({pattern!r})")
                out.append(cls)
                i = end + 2
                continue
            if c == "[":
                out.append("\\[")  # Python warns about nested sets; Go treats '[' literally here
            else:
                out.append(c)
                if c == "]":
                    in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            # A ']' right after '[' or '[^' is a literal in both dialects.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if c == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2:]
            if rest[:1] in ("=", "!") or rest[:2] in ("<=", "<!"):
                raise RegexTranslationError(f"Go regexp has no lookaround ({pattern!r})")
            if rest.startswith("<"):
                out.append("(?P<")
                i += 3
                continue
            flags = re.match(r"[a-zA-Z-]*", rest).group(0)
            if "U" in flags:
                raise RegexTranslationError(f"the (?U) flag is not supported ({pattern!r})")
        if c == "$" and not multiline:
            out.append("\\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    if in_class:
        raise RegexTranslationError(f"missing closing ] in regex {pattern!r}")
    return "".join(out)


_compiled: dict[str, re.Pattern[str]] = {}


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    rx = _compiled.get(pattern)
    if rx is None:
        try:
            rx = re.compile(translate_go_regex(pattern), re.ASCII)
        except re.error as e:
            raise RegexTranslationError(f"invalid regex {pattern!r}: {e}") from e
        _compiled[pattern] = rx
    return rx


def _max_width(rx: re.Pattern[str]) -> int | None:
    """Longest possible match in characters, None when unbounded."""
    lo, hi = _sre_parse.parse(rx.pattern, rx.flags).getwidth()
    return None if hi >= _sre_parse.MAXREPEAT else int(hi)


# --- batch ------------------------------------------------------------------------------------

def _go_replace_all_empty(rx: re.Pattern[str], text: str) -> str:
    """regexp.ReplaceAllString(text, "") with Go's scan order (empty matches advance one rune)."""
    out: list[str] = []
    pos = last = 0
    n = len(text)
    while pos <= n:
        m = rx.search(text, pos)
        if m is None:
            break
        s, e = m.span()
        if e > s:
            out.append(text[last:s])
            last = e
            pos = e
        else:
            pos = s + 1
    out.append(text[last:])
    return "".join(out)


def _seq(v: Sequence[str] | None) -> Sequence[str]:
    return v or ()


def _trims(config: PostprocessConfig, text: str) -> str:
    for c in _seq(config.trimspace):
        if text.startswith(c):
            text = text[len(c):]
        text = go_trim_space(text)
    for c in _seq(config.trimsuffix):
        if c and text.endswith(c):
            text = text[: len(text) - len(c)]
        text = go_trim_space(text)
    return text


def _extract(config: PostprocessConfig, text: str) -> str:
    found = ""
    for r in _seq(config.extract_regex):
        m = compile_go_regex(r).search(text)
        if m is not None:
            found += m.group(0)
    return found if found != "" else text


def finetune(config: PostprocessConfig, text: str) -> str:
    """LocalAI's backend.Finetune without echo (the caller prepends the prompt for echo)."""
    for c in _seq(config.cutstrings):
        text = _go_replace_all_empty(compile_go_regex(c), text)
    text = _extract(config, text)
    return _trims(config, text)


def validate_postprocess(config: PostprocessConfig) -> list[str]:
    """Problems with the config's regexes (LocalAI log.Fatal()s on an invalid one at reply time)."""
    problems = []
    for key in ("cutstrings", "extract_regex"):
        for r in _seq(getattr(config, key, None)):
            try:
                compile_go_regex(r)
            except RegexTranslationError as e:
                problems.append(f"{key}: {e}")
    return problems


# --- streaming --------------------------------------------------------------------------------

class _Stage:
    def feed(self, s: str) -> str:
        raise NotImplementedError

    def finish(self) -> str:
        raise NotImplementedError


class _HoldAll(_Stage):
    """Keeps everything until the end, then applies fn to the whole text."""

    def __init__(self, fn):
        self._fn = fn
        self._buf: list[str] = []

    def feed(self, s: str) -> str:
        self._buf.append(s)
        return ""

    def finish(self) -> str:
        return self._fn("".join(self._buf))


class _CutStage(_Stage):
    """ReplaceAll(rx, "") over a stream, for a regex whose matches are at most `width` long.

    Whether the regex matches at position p (and what) depends only on text[p-1 : p+width+1],
    so a position with that much text after it is decided; text before the first undecided
    position that no match covers can be released.
    """

    def __init__(self, rx: re.Pattern[str], width: int):
        self._rx = rx
        self._w = width
        self._buf = ""
        self._pos = 0   # Go's searchPos, as an index into _buf
        self._out = 0   # first index of _buf not yet emitted or cut
        self._started = False

    def _scan(self, final: bool) -> str:
        buf, rx, w = self._buf, self._rx, self._w
        n = len(buf)
        emitted: list[str] = []
        while self._pos <= n:
            m = rx.search(buf, self._pos)
            if m is None:
                safe = n if final else max(self._pos, n - w)
                if safe > self._out:
                    emitted.append(buf[self._out:safe])
                    self._out = safe
                self._pos = max(self._pos, safe)
                break
            s, e = m.span()
            if not final and s + w + 1 > n:
                safe = max(self._out, min(s, n - w))
                emitted.append(buf[self._out:safe])
                self._out = safe
                self._pos = max(self._pos, safe)
                break
            if e > s:
                emitted.append(buf[self._out:s])
                self._out = e
                self._pos = e
            else:
                self._pos = s + 1
        if final and self._out < n:
            emitted.append(buf[self._out:])
            self._out = n
        self._compact()
        return "".join(emitted)

    def _compact(self) -> None:
        # Keep one character before the scan position: it is the context for \b and ^.
        drop = min(self._out, self._pos) - 1
        if drop > 4096:
            self._buf = self._buf[drop:]
            self._out -= drop
            self._pos -= drop

    def feed(self, s: str) -> str:
        if not s:
            return ""
        self._buf += s
        return self._scan(final=False)

    def finish(self) -> str:
        return self._scan(final=True)


class _TrimStage(_Stage):
    """trimspace/trimsuffix over a stream: decide the head once, hold back a removable tail.

    The end of the final text can lose only whitespace and at most M = sum(len(trimsuffix))
    other characters, so a character followed by more than M non-space characters is safe.
    The head (prefix strips and leading space) is decided once a non-space character
    follows everything the prefix rules look at.
    """

    def __init__(self, config: PostprocessConfig):
        self._config = config
        self._prefixes = list(_seq(config.trimspace))
        self._m = sum(len(s) for s in _seq(config.trimsuffix))
        self._buf = ""
        self._head: int | None = None  # index where the output starts, once decided
        self._emitted = 0               # index of _buf up to which output was released

    def _decide_head(self) -> tuple[int, int] | None:
        """(start, end of the region the prefix rules read), or None while undecided."""
        buf, cur, looked = self._buf, 0, 0
        # Each trimspace entry strips its prefix then leading space; trimsuffix entries only
        # strip leading space (TrimSpace), which one step covers.
        steps = self._prefixes or [""]
        for c in steps:
            rest = buf[cur:]
            if c:
                if len(rest) < len(c) and c.startswith(rest):
                    return None
                if rest.startswith(c):
                    cur += len(c)
                looked = max(looked, cur + min(len(c), len(rest)))
            j = cur
            while j < len(buf) and buf[j] in GO_SPACE:
                j += 1
            if j == len(buf):
                return None
            cur = j
            looked = max(looked, j + 1)
        return cur, looked

    def _safe_end(self) -> int:
        buf, count, j = self._buf, 0, len(self._buf)
        while j > 0:
            if buf[j - 1] not in GO_SPACE:
                count += 1
                if count > self._m:
                    return j
            j -= 1
        return 0

    def feed(self, s: str) -> str:
        if not s:
            return ""
        self._buf += s
        if self._head is None:
            decided = self._decide_head()
            if decided is None:
                return ""
            head, looked = decided
            if looked > self._safe_end():
                return ""
            self._head = self._emitted = head
        end = self._safe_end()
        if end <= self._emitted:
            return ""
        out = self._buf[self._emitted:end]
        self._emitted = end
        return out

    def finish(self) -> str:
        final = _trims(self._config, self._buf)
        done = self._buf[self._head:self._emitted] if self._head is not None else ""
        if not final.startswith(done):  # would be a bug in the hold-back rules above
            raise AssertionError("streaming post-processing released text the final trim changed")
        return final[len(done):]


class StreamFinetuner:
    """Streaming finetune: concatenated feed() outputs + finish() == finetune(config, full text)."""

    def __init__(self, config: PostprocessConfig):
        stages: list[_Stage] = []
        pending_cuts: list[re.Pattern[str]] = []
        for c in _seq(config.cutstrings):
            rx = compile_go_regex(c)
            w = _max_width(rx)
            if w == 0:
                continue  # only empty matches: ReplaceAll with "" changes nothing
            if w is None:
                pending_cuts.append(rx)
                continue
            if pending_cuts:
                pending_cuts.append(rx)
                continue
            stages.append(_CutStage(rx, w))
        rest_cuts = list(pending_cuts)
        needs_end = bool(rest_cuts) or bool(_seq(config.extract_regex))
        if needs_end:
            # Some rule can only be decided on the whole text: hold everything after the
            # decidable cuts until finish().
            def whole(text: str, cuts=rest_cuts) -> str:
                for rx in cuts:
                    text = _go_replace_all_empty(rx, text)
                return _trims(config, _extract(config, text))
            stages.append(_HoldAll(whole))
        elif _seq(config.trimspace) or _seq(config.trimsuffix):
            stages.append(_TrimStage(config))
        self._stages = stages
        self._finished = False

    def feed(self, delta: str) -> str:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        for st in self._stages:
            delta = st.feed(delta)
        return delta

    def finish(self) -> str:
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        out = ""
        for st in self._stages:
            out = st.feed(out) + st.finish()
        return out


@dataclass
class ReplyPrefixer:
    """LocalAI prepends template.reply_prefix to the model's reply (before post-processing):
    to the whole text when not streaming, to the first token when streaming."""

    prefix: str
    _done: bool = False

    def feed(self, delta: str) -> str:
        if not self._done and self.prefix:
            self._done = True
            return self.prefix + delta
        self._done = True
        return delta


def apply_reply_prefix(prefix: str | None, text: str) -> str:
    return (prefix or "") + text


def finetune_stream(config: PostprocessConfig, deltas: Iterable[str]) -> str:
    """Convenience: run a whole stream through StreamFinetuner, return the concatenated output."""
    f = StreamFinetuner(config)
    return "".join(f.feed(d) for d in deltas) + f.finish()
