"""Go encoding/json Marshal/MarshalIndent for template values (sorted map keys, struct json tags, HTML escaping)."""

from __future__ import annotations

import math

from .godate import as_go_time, rfc3339nano
from .gofmt import format_float_json
from .values import MISSING, NilDict, NilList, field_value, is_struct, struct_info


class JSONError(Exception):
    """Go's json.Marshal would fail (NaN/Inf, unsupported type)."""


def _esc_string(s: str, html: bool) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            if c == "\n":
                out.append("\\n")
            elif c == "\r":
                out.append("\\r")
            elif c == "\t":
                out.append("\\t")
            elif c == "\b":
                out.append("\\b")
            elif c == "\f":
                out.append("\\f")
            else:
                out.append(f"\\u{o:04x}")
        elif html and c in "<>&":
            out.append(f"\\u{o:04x}")
        elif o == 0x2028 or o == 0x2029:
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:  # invalid UTF-8 byte (surrogateescape) -> U+FFFD
            out.append("\\ufffd")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _empty(v) -> bool:
    if v is None or v is MISSING:
        return True
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v == 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) == 0
    return False


def _enc(v, html: bool, out: list, indent: str | None, level: int) -> None:
    if v is None or v is MISSING:
        out.append("null")
        return
    t = type(v)
    if t is str:
        out.append(_esc_string(v, html))
    elif t is bool:
        out.append("true" if v else "false")
    elif t is int:
        out.append(str(v))
    elif t is float:
        if math.isnan(v) or math.isinf(v):
            raise JSONError(f"json: unsupported value: {v}")
        out.append(format_float_json(v))
    elif t is list or t is tuple:
        _enc_seq(v, html, out, indent, level)
    elif t is dict:
        items = sorted(((str(k) if not isinstance(k, str) else k), x) for k, x in v.items())
        _enc_obj(items, html, out, indent, level)
    elif is_struct(v):
        items = []
        info = struct_info(t)
        for attr, name, omit in info.json_fields:
            x = field_value(info, v, attr)
            if omit and _empty(x):
                continue
            items.append((name, x))
        _enc_obj(items, html, out, indent, level)
    elif t is NilList or t is NilDict:
        out.append("null")
    elif (go_time := as_go_time(v)) is not None:
        out.append('"' + rfc3339nano(go_time) + '"')
    elif isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        _enc(float(v), html, out, indent, level)
    elif isinstance(v, str):
        out.append(_esc_string(str(v), html))
    elif isinstance(v, (list, tuple)):
        _enc_seq(list(v), html, out, indent, level)
    elif isinstance(v, dict):
        _enc(dict(v), html, out, indent, level)
    else:
        raise JSONError(f"json: unsupported type: {type(v).__name__}")


def _enc_seq(v, html, out, indent, level):
    if not v:
        out.append("[]")
        return
    out.append("[")
    for i, x in enumerate(v):
        if i:
            out.append(",")
        if indent is not None:
            out.append("\n" + indent * (level + 1))
        _enc(x, html, out, indent, level + 1)
    if indent is not None:
        out.append("\n" + indent * level)
    out.append("]")


def _enc_obj(items, html, out, indent, level):
    if not items:
        out.append("{}")
        return
    out.append("{")
    for i, (k, x) in enumerate(items):
        if i:
            out.append(",")
        if indent is not None:
            out.append("\n" + indent * (level + 1))
        out.append(_esc_string(k, html))
        out.append(": " if indent is not None else ":")
        _enc(x, html, out, indent, level + 1)
    if indent is not None:
        out.append("\n" + indent * level)
    out.append("}")


def marshal(v, escape_html: bool = True, indent: str | None = None) -> str:
    """json.Marshal (indent=None) or json.MarshalIndent(v, "", indent)."""
    out: list[str] = []
    _enc(v, escape_html, out, indent, 0)
    return "".join(out)
