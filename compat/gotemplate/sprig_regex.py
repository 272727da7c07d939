"""Sprig's regex functions over Go's regexp semantics (goregex), with Go's panic and error texts."""

from __future__ import annotations

from . import goregex
from .funcs import FuncError
from .gofmt import quote
from .values import StringList


def _compile(pattern: str) -> goregex.GoRegex:
    """regexp.MustCompile: a bad pattern panics, which the template reports as an error."""
    try:
        return goregex.compile(pattern)
    except goregex.GoRegexError as e:
        shown = "`" + pattern + "`" if "`" not in pattern else quote(pattern)
        raise FuncError(f"regexp: Compile({shown}): {e}") from None


def _must_compile(pattern: str) -> goregex.GoRegex:
    """regexp.Compile in sprig's must* functions: the error is returned as is."""
    try:
        return goregex.compile(pattern)
    except goregex.GoRegexError as e:
        raise FuncError(str(e)) from None


def _regex_match(pattern, s):
    # regexp.MatchString; sprig drops the error, so a bad pattern matches nothing.
    try:
        return goregex.compile(pattern).match(s)
    except goregex.GoRegexError:
        return False


def _regex_find(pattern, s):
    m = _compile(pattern).find(s)
    return m.group(0) if m else ""


def _regex_find_all(pattern, s, n):
    return StringList([m.group(0) for m in _compile(pattern).find_all(s, n)])


def _regex_replace_all(pattern, s, repl):
    return _compile(pattern).replace_all_string(s, repl)


def _regex_replace_all_literal(pattern, s, repl):
    return _compile(pattern).replace_all(s, lambda m: repl)


def _regex_split(pattern, s, n):
    return StringList(_compile(pattern).split(s, n))


def _regex_quote_meta(s):
    return goregex.quote_meta(s)


def _must_regex_match(pattern, s):
    return _must_compile(pattern).match(s)


def _must_regex_find(pattern, s):
    m = _must_compile(pattern).find(s)
    return m.group(0) if m else ""


def _must_regex_find_all(pattern, s, n):
    return StringList([m.group(0) for m in _must_compile(pattern).find_all(s, n)])


def _must_regex_replace_all(pattern, s, repl):
    return _must_compile(pattern).replace_all_string(s, repl)


def _must_regex_replace_all_literal(pattern, s, repl):
    return _must_compile(pattern).replace_all(s, lambda m: repl)


def _must_regex_split(pattern, s, n):
    return StringList(_must_compile(pattern).split(s, n))
