"""Shared helpers of the sprig functions: strval, spf13/cast-like conversions, emptiness, Go kinds."""

from __future__ import annotations

import re

from .funcs import FuncError
from .gofmt import format_value
from .values import MISSING, Int64, StringList, is_struct

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# unicode.IsSpace
GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                      "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
GO_SPACE_STR = "".join(sorted(GO_SPACE))


def strval(v) -> str:
    """sprig's strval: strings as is, everything else through fmt's %v."""
    if type(v) is str:
        return v
    return format_value(v)


def go_kind(v) -> str:
    """reflect.Kind name of a value (sprig error texts use kinds, not types)."""
    if isinstance(v, bool):
        return "bool"
    if type(v) is Int64:
        return "int64"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "slice"
    if isinstance(v, dict):
        return "map"
    if is_struct(v):
        return "struct"
    return "invalid"


def wrap64(n: int) -> int:
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= (1 << 63) else n


def parse_go_int(s: str, base0: bool = True):
    s2 = s
    neg = False
    if s2 and s2[0] in "+-":
        neg = s2[0] == "-"
        s2 = s2[1:]
    if not s2:
        return None
    try:
        low = s2.lower()
        if base0 and low.startswith(("0x", "0o", "0b")):
            n = int(s2, 0)
        elif base0 and len(s2) > 1 and s2[0] == "0":
            n = int(s2, 8)
        elif s2.isdigit() and s2.isascii():
            n = int(s2)
        else:
            return None
    except ValueError:
        return None
    n = -n if neg else n
    if not (INT64_MIN <= n <= INT64_MAX):
        return None
    return n


def to_int64(v) -> int:
    """spf13/cast ToInt64 as sprig uses it: errors become 0."""
    if is_nil(v):
        return 0
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, int):
        return wrap64(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return INT64_MIN
        return wrap64(int(v))
    if isinstance(v, str):
        n = parse_go_int(_trim_zero_decimal(v))
        return 0 if n is None else n
    return 0


def _trim_zero_decimal(s: str) -> str:
    # cast >= 1.5 accepts "12.0" / "12." as integers.
    if "." in s:
        ip, _, fp = s.partition(".")
        if fp.strip("0") == "" and ip:
            return ip
    return s


def to_float64(v) -> float:
    if is_nil(v):
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            if not re.fullmatch(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|[iI]nf(inity)?|NaN)", v):
                return 0.0
            return float(v)
        except ValueError:
            return 0.0
    return 0.0


def empty(v) -> bool:
    if is_nil(v):
        return True
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v == 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) == 0
    if is_struct(v):
        return False
    return False


def deep_equal(a, b) -> bool:
    """reflect.DeepEqual for our data model (1 and 1.0 differ: int vs float64)."""
    both_lists = isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
    if type(a) is not type(b) and not both_lists:
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    return a == b


def to_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def from_bytes(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def go_split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def strslice(v) -> list[str]:
    if isinstance(v, (list, tuple)):
        return StringList(strval(x) for x in v if not is_nil(x))
    if is_nil(v):
        return StringList()
    return StringList([strval(v)])


def kind_error(what: str, v) -> FuncError:
    if is_nil(v):
        return FuncError("runtime error: invalid memory address or nil pointer dereference")
    return FuncError(f"Cannot {what} on type {go_kind(v)}")


def is_nil(v) -> bool:
    return v is None or v is MISSING
