"""LocalAI's reply post-processing (cutstrings, extract_regex, trimspace, trimsuffix), batch and streaming."""
from __future__ import annotations

from typing import Protocol, Sequence

from compat.gotemplate import goregex

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


class PostprocessConfig(Protocol):
    @property
    def cutstrings(self) -> Sequence[str] | None: ...

    @property
    def extract_regex(self) -> Sequence[str] | None: ...

    @property
    def trimspace(self) -> Sequence[str] | None: ...

    @property
    def trimsuffix(self) -> Sequence[str] | None: ...


def go_trim_space(s: str) -> str:
    return s.strip(GO_SPACE)


def compile_go_regex(pattern: str) -> goregex.GoRegex:
    """A cutstrings/extract_regex pattern as Go compiles it (GoRegexError as Go refuses it)."""
    return goregex.compile(pattern)


def _max_width(rx: goregex.GoRegex) -> int | None:
    """Longest possible match in characters, None when unbounded."""
    lo, hi = _sre_parse.parse(rx.rx.pattern, rx.rx.flags).getwidth()
    return None if hi >= _sre_parse.MAXREPEAT else int(hi)


# --- batch ------------------------------------------------------------------------------------

def _cut(rx: goregex.GoRegex, text: str) -> str:
    """regexp.ReplaceAllString(text, "") with Go's treatment of empty matches."""
    return rx.replace_all(text, lambda m: "")


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
        m = compile_go_regex(r).find(text)
        if m is not None:
            found += m.group(0)
    return found if found != "" else text


def postprocess_reply(config: PostprocessConfig, text: str) -> str:
    """LocalAI's backend.Finetune (cutstrings, extract_regex, trimspace, trimsuffix) without echo:
    the caller prepends the prompt for echo."""
    for c in _seq(config.cutstrings):
        text = _cut(compile_go_regex(c), text)
    text = _extract(config, text)
    return _trims(config, text)


def validate_postprocess(config: PostprocessConfig) -> list[tuple[str, int, goregex.GoRegexError]]:
    """(key, index, error) for each of the config's regexes Go would refuse or this server cannot
    reproduce. LocalAI log.Fatal()s on an invalid one at reply time, after the whole generation."""
    problems = []
    for key in ("cutstrings", "extract_regex"):
        for i, r in enumerate(_seq(getattr(config, key, None))):
            try:
                compile_go_regex(r)
            except goregex.GoRegexError as e:
                problems.append((key, i, e))
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

    def __init__(self, rx: goregex.GoRegex, width: int):
        self._rx = rx
        self._w = width
        self._buf = ""
        self._pos = 0   # Go's searchPos, as an index into _buf
        self._out = 0   # first index of _buf not yet emitted or cut

    def _scan(self, final: bool) -> str:
        buf, rx, w = self._buf, self._rx, self._w
        n = len(buf)
        emitted: list[str] = []
        while self._pos <= n:
            m = rx.rx.search(buf, self._pos)
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


class StreamPostprocessor:
    """Streaming post-processing: concatenated feed() outputs + finish() == postprocess_reply(config, full text)."""

    def __init__(self, config: PostprocessConfig):
        stages: list[_Stage] = []
        pending_cuts: list[goregex.GoRegex] = []
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
                    text = _cut(rx, text)
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
