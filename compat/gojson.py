"""Go encoding/json.Marshal output for JSON-decoded values and ordered structs (LocalAI's fallback text)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any


class GoStruct(list):
    """An ordered list of (json name, value) pairs: marshalled in field order, not sorted."""


# \b and \f use the short forms since Go 1.22.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
            "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        e = _ESCAPES.get(ch)
        if e is not None:
            out.append(e)
        elif ch < " ":
            out.append("\\u%04x" % ord(ch))
        elif "\ud800" <= ch <= "\udfff":
            out.append("\ufffd")  # Go replaces invalid UTF-8 (a lone surrogate here)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_float(f: float) -> str:
    """strconv.AppendFloat as encoding/json uses it: shortest digits, 'f' unless tiny/huge."""
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"json: unsupported value: {f}")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        r = repr(f)
        if len(r) >= 4 and r[-4] == "e" and r[-3] == "-" and r[-2] == "0":
            r = r[:-2] + r[-1]
        return r
    s = format(Decimal(repr(f)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def marshal(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, GoStruct):
        return "{" + ",".join(_string(k) + ":" + marshal(x) for k, x in v) + "}"
    if isinstance(v, dict):
        return "{" + ",".join(_string(str(k)) + ":" + marshal(v[k]) for k in sorted(v, key=lambda k: str(k).encode())) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(marshal(x) for x in v) + "]"
    raise TypeError(f"json: unsupported type {type(v).__name__}")


def as_go_any(v: Any) -> Any:
    """A JSON-decoded value as Go's `any` holds it: every number is a float64."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, dict):
        return {k: as_go_any(x) for k, x in v.items()}
    if isinstance(v, list):
        return [as_go_any(x) for x in v]
    return v
