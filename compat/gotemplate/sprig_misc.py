"""Sprig JSON, type-inspection, environment and path functions."""

from __future__ import annotations

import os
import re

from . import gojson
from .funcs import FuncError
from .sprig_core import is_nil, go_kind
from .values import go_type_name


def _to_json(v):
    try:
        return gojson.marshal(v)
    except gojson.JSONError:
        return ""


def _to_pretty_json(v):
    try:
        return gojson.marshal(v, indent="  ")
    except gojson.JSONError:
        return ""


def _to_raw_json(v):
    try:
        return gojson.marshal(v, escape_html=False)
    except gojson.JSONError as e:
        raise FuncError(str(e))


def _from_json(s):
    import json
    try:
        return json.loads(s, parse_int=float, parse_constant=lambda c: None)
    except ValueError:
        return {}


def _type_of(v):
    return go_type_name(v)


def _kind_of(v):
    return go_kind(v) if not is_nil(v) else "invalid"


def _type_is(t, v):
    return t == go_type_name(v)


def _kind_is(k, v):
    return k == _kind_of(v)


def _env(name):
    return os.environ.get(name, "")


def _expandenv(s):
    return re.sub(r"\$(\{([^}]*)\}|[A-Za-z0-9_]+)",
                  lambda m: os.environ.get(m.group(2) if m.group(2) is not None else m.group(1), ""), s)


def _go_clean(p: str) -> str:
    """path.Clean."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    parts: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(seg)
    out = ("/" if rooted else "") + "/".join(parts)
    return out or ("/" if rooted else ".")


def _go_base(p: str) -> str:
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p.rsplit("/", 1)[-1]


def _go_dir(p: str) -> str:
    head = p[: p.rfind("/") + 1]
    return _go_clean(head)


def _go_ext(p: str) -> str:
    i = len(p) - 1
    while i >= 0 and p[i] != "/":
        if p[i] == ".":
            return p[i:]
        i -= 1
    return ""


def _must_to_json(v):
    try:
        return gojson.marshal(v)
    except gojson.JSONError as e:
        raise FuncError(str(e))


def _must_to_pretty_json(v):
    try:
        return gojson.marshal(v, indent="  ")
    except gojson.JSONError as e:
        raise FuncError(str(e))
