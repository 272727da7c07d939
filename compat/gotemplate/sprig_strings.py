"""Sprig string functions (trim, case, split/join, quote, substr, nospace, base64, hashes, ...)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
import zlib

from .funcs import FuncError
from .gofmt import quote
from .sprig_core import GO_SPACE, GO_SPACE_STR, to_bytes, go_split, is_nil, parse_go_int, from_bytes, empty, strslice, strval
from .values import StringList


def _go_upper(s: str) -> str:
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def _go_lower(s: str) -> str:
    # U+0130 is the one rune whose full lowercase mapping differs from Go's simple mapping ("i").
    return "".join(u if len(u := c.lower()) == 1 else ("i" if c == "\u0130" else c) for c in s)


def _is_separator(c: str) -> bool:
    o = ord(c)
    if o <= 0x7F:
        if c.isalnum() or c == "_":
            return False
        return True
    if c.isalpha() or c.isdigit():
        return False
    return c in GO_SPACE


def _title(s: str) -> str:
    prev = " "
    out = []
    for c in s:
        if _is_separator(prev):
            t = c.title() if len(c.title()) == 1 else c
            out.append(t)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _trim(s):
    return s.strip(GO_SPACE_STR)


def _trim_all(cutset, s):
    return s.strip(cutset) if cutset else s


def _trim_prefix(p, s):
    return s[len(p):] if p and s.startswith(p) else s


def _trim_suffix(p, s):
    return s[: len(s) - len(p)] if p and s.endswith(p) else s


def _replace(old, new, s):
    if old == "":
        return new + new.join(s) + new if s else new
    return s.replace(old, new)


def _split(sep, s):
    return {f"_{i}": p for i, p in enumerate(go_split(s, sep))}


def _split_list(sep, s):
    return StringList(go_split(s, sep))


def _splitn(sep, n, s):
    """strings.SplitN as a {_0: ..., _1: ...} map."""
    if n == 0:
        return {}
    if n < 0:
        parts = go_split(s, sep)
    elif sep:
        parts = s.split(sep, n - 1)
    else:
        parts = list(s[: n - 1]) + ([s[n - 1:]] if len(s) >= n else [])
    return {f"_{i}": p for i, p in enumerate(parts)}


def _join(sep, v):
    return sep.join(strslice(v))


def _quote(*args):
    return " ".join(quote(strval(a)) for a in args if not is_nil(a))


def _squote(*args):
    return " ".join("'" + strval(a) + "'" for a in args if not is_nil(a))


def _cat(*args):
    return " ".join(strval(a) for a in args if not is_nil(a))


def _repeat(count, s):
    if count < 0:
        raise FuncError("strings: negative Repeat count")
    return s * count


def _slice_bounds(a, b, n, open_end=False):
    if b is not None and b > n:
        raise FuncError(f"runtime error: slice bounds out of range [:{b}] with length {n}")
    if a is not None:
        hi = n if b is None else b
        if a > hi:
            raise FuncError(f"runtime error: slice bounds out of range [{a}:{hi}]")


def _substr(start, end, s):
    b = to_bytes(s)
    n = len(b)
    if start < 0:
        _slice_bounds(None, end, n)
        if end < 0:
            raise FuncError(f"runtime error: slice bounds out of range [:{end}]")
        return from_bytes(b[:end])
    if end < 0 or end > n:
        _slice_bounds(start, None, n)
        return from_bytes(b[start:])
    _slice_bounds(start, end, n)
    return from_bytes(b[start:end])


def _trunc(c, s):
    b = to_bytes(s)
    n = len(b)
    if c < 0 and n + c > 0:
        return from_bytes(b[n + c:])
    if c >= 0 and n > c:
        return from_bytes(b[:c])
    return s


def _nospace(s):
    if s == "":
        return s
    b = to_bytes(s)
    kept = [x for x in b if chr(x) not in GO_SPACE]
    if len(kept) == len(b):
        return s
    return "".join(chr(x) for x in kept)


def _indent(n, s):
    pad = " " * n
    return pad + s.replace("\n", "\n" + pad)


def _nindent(n, s):
    return "\n" + _indent(n, s)


def _b64enc(s):
    return base64.b64encode(to_bytes(s)).decode("ascii")


def _b64dec(s):
    try:
        return from_bytes(_go_b64decode(s))
    except FuncError as e:
        return str(e)


def _go_b64decode(s: str) -> bytes:
    data = s.replace("\r", "").replace("\n", "")
    for i, c in enumerate(data):
        if not (c.isascii() and (c.isalnum() or c in "+/=")):
            raise FuncError(f"illegal base64 data at input byte {i}")
    if len(data) % 4:
        raise FuncError(f"illegal base64 data at input byte {len(data) - len(data) % 4}")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise FuncError(f"illegal base64 data at input byte {max(data.find('='), 0)}")


def _atoi(s):
    n = parse_go_int(s, base0=False)
    return 0 if n is None else n


def _ternary(vt, vf, cond):
    return vt if cond else vf


def _coalesce(*args):
    for a in args:
        if not empty(a):
            return a
    return None


def _default(d, *given):
    if not given or empty(given[0]):
        return d
    return given[0]


def _to_string(v):
    return strval(v)


def _contains(sub, s):
    return sub in s


def _has_prefix(p, s):
    return s.startswith(p)


def _has_suffix(p, s):
    return s.endswith(p)


def _fail(msg):
    raise FuncError(msg)


def _abbrev(width, s):
    if width < 4:
        return s
    b = to_bytes(s)
    if len(b) <= width:
        return s
    return from_bytes(b[: width - 3]) + "..."


def _plural(one, many, count):
    return one if count == 1 else many


def _b32enc(s):
    return base64.b32encode(to_bytes(s)).decode("ascii")


def _b32dec(s):
    try:
        return from_bytes(base64.b32decode(s))
    except (binascii.Error, ValueError):
        return "illegal base32 data at input byte 0"


def _sha256sum(s):
    return hashlib.sha256(to_bytes(s)).hexdigest()


def _sha1sum(s):
    return hashlib.sha1(to_bytes(s)).hexdigest()


def _adler32sum(s):
    return str(zlib.adler32(to_bytes(s)))


def _uuidv4():
    return str(uuid.uuid4())
