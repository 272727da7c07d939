"""Sprig regex functions on Python re (RE2 subset) with Go's $1/${name} expansion and error texts."""

from __future__ import annotations

import re

from .funcs import FuncError
from .gofmt import quote
from .values import StringList


def _re(pattern: str, must: bool):
    try:
        return re.compile(_re2_to_py(pattern))
    except re.error as e:
        if must:
            shown = "`" + pattern + "`" if "`" not in pattern else quote(pattern)
            raise FuncError(f"regexp: Compile({shown}): error parsing regexp: {_go_re_error(pattern, e)}")
        return None


def _go_re_error(pattern: str, e: re.error) -> str:
    """Go regexp/syntax's wording for the common parse errors Python's re reports."""
    msg = e.msg
    pos = e.pos or 0
    if msg.startswith("missing ), unterminated subpattern"):
        return f"missing closing ): `{pattern}`"
    if msg.startswith("unbalanced parenthesis"):
        return f"unexpected ): `{pattern}`"
    if msg.startswith("unterminated character set"):
        return f"missing closing ]: `{pattern[pos:]}`"
    if msg.startswith("nothing to repeat"):
        return f"missing argument to repetition operator: `{pattern[pos:pos + 1]}`"
    if msg.startswith("multiple repeat"):
        return f"invalid nested repetition operator: `{pattern[max(pos - 1, 0):pos + 1]}`"
    if msg.startswith("bad escape"):
        return f"invalid escape sequence: `{pattern[pos:pos + 2]}`"
    if msg.startswith("bad character range"):
        return f"invalid character class range: `{pattern[pos:].split(']')[0]}`"
    return msg


def _re2_to_py(p: str) -> str:
    # Go's named groups (?P<name>...) are Python's too; \z is Python's \Z.
    return p.replace(r"\z", r"\Z")


def _regex_match(pattern, s):
    r = _re(pattern, False)
    return bool(r and r.search(s))


def _regex_find(pattern, s):
    m = _re(pattern, True).search(s)
    return m.group(0) if m else ""


def _regex_find_all(pattern, s, n):
    ms = [m.group(0) for m in _re(pattern, True).finditer(s)]
    return StringList(ms if n < 0 else ms[:n])


def _expand(template: str, m) -> str:
    """Go's Regexp.Expand: $1, ${1}, $name, ${name}; $$ is a literal $."""
    out = []
    i = 0
    n = len(template)
    while i < n:
        c = template[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            k = template.find("}", i + 2)
            name = template[i + 2:k] if k > 0 else ""
            if k < 0 or not re.fullmatch(r"\w+", name):
                out.append(c)
                i += 1
                continue
            i = k + 1
        else:
            mm = re.match(r"\w+", template[i + 1:])
            if not mm:
                out.append(c)
                i += 1
                continue
            name = mm.group(0)
            i += 1 + len(name)
        try:
            g = m.group(int(name)) if name.isdigit() else m.group(name)
        except (IndexError, KeyError, re.error):
            g = ""  # Go expands an unknown group to ""
        out.append(g or "")
    return "".join(out)


def _regex_replace_all(pattern, s, repl):
    return _re(pattern, True).sub(lambda m: _expand(repl, m), s)


def _regex_replace_all_literal(pattern, s, repl):
    return _re(pattern, True).sub(lambda m: repl, s)


def _regex_split(pattern, s, n):
    r = _re(pattern, True)
    if n == 0:
        return []
    parts = r.split(s) if r.groups == 0 else re.compile(r.pattern.replace("(", "(?:")).split(s)
    if n > 0 and len(parts) > n:
        parts = parts[: n - 1] + [s[sum(len(p) for p in parts[: n - 1]):]]
    return StringList(parts)


def _regex_quote_meta(s):
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in s)


def _must_re(pattern: str):
    try:
        return re.compile(_re2_to_py(pattern))
    except re.error as e:
        raise FuncError(f"error parsing regexp: {_go_re_error(pattern, e)}")


def _must_regex_match(pattern, s):
    return bool(_must_re(pattern).search(s))


def _must_regex_find(pattern, s):
    _must_re(pattern)
    return _regex_find(pattern, s)


def _must_regex_find_all(pattern, s, n):
    _must_re(pattern)
    return _regex_find_all(pattern, s, n)


def _must_regex_replace_all(pattern, s, repl):
    _must_re(pattern)
    return _regex_replace_all(pattern, s, repl)


def _must_regex_replace_all_literal(pattern, s, repl):
    _must_re(pattern)
    return _regex_replace_all_literal(pattern, s, repl)


def _must_regex_split(pattern, s, n):
    _must_re(pattern)
    return _regex_split(pattern, s, n)
