"""Go text/template's builtin functions (and, or, eq, index, len, print, printf, html, js, ...) and FuncSpec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .gofmt import format_value, sprint, sprintf, sprintln
from .errors import FuncError
from .values import MISSING, go_type_name, is_struct, truth

# Parameter type codes (what Go's reflection would convert an argument to).
T_ANY = "any"        # interface{}
T_VALUE = "value"    # reflect.Value: receives MISSING for invalid values
T_STR = "string"
T_INT = "int"
T_FLOAT = "float64"
T_BOOL = "bool"
T_LIST = "list"      # []interface{}
T_MAP = "map"        # map[string]interface{}

TYPE_NAMES = {
    T_ANY: "interface {}", T_VALUE: "reflect.Value", T_STR: "string", T_INT: "int",
    T_FLOAT: "float64", T_BOOL: "bool", T_LIST: "[]interface {}", T_MAP: "map[string]interface {}",
}


@dataclass(frozen=True, slots=True)
class FuncSpec:
    fn: Callable | None  # None: and/or, which the executor evaluates itself
    params: tuple = ()
    variadic: str | None = None   # element type of a trailing ...T parameter
    lazy: bool = False            # and/or evaluate their arguments themselves


def _nil(v) -> bool:
    return v is None or v is MISSING


# ---------------------------------------------------------------- truth & compare

_truth = truth


def _not(v) -> bool:
    return not _truth(v)


_BAD_TYPE = "invalid type for comparison"
_INCOMPATIBLE = "incompatible types for comparison"


def _kind(v) -> str:
    if _nil(v):
        return "invalid"
    t = type(v)
    if t is bool:
        return "bool"
    if t is int or (isinstance(v, int) and t is not bool):
        return "int"
    if t is float:
        return "float"
    if t is str:
        return "string"
    return "other"


def _eq(a, *others) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    k1 = _kind(a)
    for b in others:
        k2 = _kind(b)
        if k1 != k2:
            if not _nil(a) and not _nil(b):
                raise FuncError(_INCOMPATIBLE)
            truth = False
        elif k1 in ("bool", "int", "float", "string"):
            truth = a == b
        elif k1 == "invalid":
            truth = True
        else:
            if go_type_name(a) != go_type_name(b):
                raise FuncError(
                    f"non-comparable types {sprintf('%s', [a])}: {go_type_name(a)}, "
                    f"{go_type_name(b)}: {format_value(b)}"
                )
            if isinstance(b, (list, tuple, dict)):
                raise FuncError(f"non-comparable type {sprintf('%s', [b])}: {go_type_name(b)}")
            truth = a == b
        if truth:
            return True
    return False


def _ne(a, b) -> bool:
    return not _eq(a, b)


def _basic(v) -> str:
    k = _kind(v)
    if k in ("invalid", "other"):
        raise FuncError(_BAD_TYPE)
    return k


def _lt(a, b) -> bool:
    k1 = _basic(a)
    k2 = _basic(b)
    if k1 != k2:
        raise FuncError(_INCOMPATIBLE)
    if k1 == "bool":
        raise FuncError(_BAD_TYPE)
    return a < b


def _le(a, b) -> bool:
    return _lt(a, b) or _eq(a, b)


def _gt(a, b) -> bool:
    return not _le(a, b)


def _ge(a, b) -> bool:
    return not _lt(a, b)


# ---------------------------------------------------------------- index / len / slice

def _index(item, *indexes):
    if _nil(item):
        raise FuncError("index of untyped nil")
    for ix in indexes:
        if item is None:
            raise FuncError("index of nil pointer")
        t = type(item)
        if isinstance(item, (list, tuple)):
            t = list
        elif isinstance(item, dict):
            t = dict
        if t is list or t is str:
            n = len(item.encode("utf-8", "surrogateescape")) if t is str else len(item)
            x = _index_arg(ix, n)
            if x == n:
                raise FuncError("reflect: " + ("string" if t is str else "slice") + " index out of range")
            if t is str:
                item = item.encode("utf-8", "surrogateescape")[x]
            else:
                item = item[x]
        elif t is dict:
            if _nil(ix):
                raise FuncError("value is nil; should be of type string")
            if type(ix) is not str:
                raise FuncError(f"value has type {go_type_name(ix)}; should be string")
            item = item.get(ix)
        else:
            raise FuncError(f"can't index item of type {go_type_name(item)}")
    return item


def _index_arg(ix, cap: int) -> int:
    if _nil(ix):
        raise FuncError("cannot index slice/array with nil")
    if not isinstance(ix, int) or type(ix) is bool:
        raise FuncError(f"cannot index slice/array with type {go_type_name(ix)}")
    if ix < 0 or ix > cap:
        raise FuncError(f"index out of range: {ix}")
    return ix


def _len(item) -> int:
    if item is MISSING:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if item is None:
        raise FuncError("len of nil pointer")
    if type(item) is str:
        return len(item.encode("utf-8", "surrogateescape"))
    if isinstance(item, (list, tuple, dict)):
        return len(item)
    raise FuncError(f"len of type {go_type_name(item)}")


def _builtin_slice(item, *idx):
    if _nil(item):
        raise FuncError("slice of untyped nil")
    if len(idx) > 3:
        raise FuncError(f"too many slice indexes: {len(idx)}")
    t = type(item)
    if t is str:
        if len(idx) == 3:
            raise FuncError("cannot 3-index slice a string")
        b = item.encode("utf-8", "surrogateescape")
        cap = len(b)
    elif t in (list, tuple):
        cap = len(item)
    else:
        raise FuncError(f"can't slice item of type {go_type_name(item)}")
    ix = [0, cap]
    for i, v in enumerate(idx):
        ix[i if i < 2 else 1] = _index_arg(v, cap) if i < 2 else ix[1]
    if ix[0] > ix[1]:
        raise FuncError(f"invalid slice index: {ix[0]} > {ix[1]}")
    if t is str:
        return b[ix[0]:ix[1]].decode("utf-8", "surrogateescape")
    return list(item[ix[0]:ix[1]])


# ---------------------------------------------------------------- printing & escaping

def _print(*args) -> str:
    return sprint(args)


def _println(*args) -> str:
    return sprintln(args)


def _printf(fmt: str, *args) -> str:
    return sprintf(fmt, list(args))


def eval_args(args) -> str:
    """The string form html/js/urlquery escape: one string as is, else Sprint with <no value> for nil."""
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    return sprint(["<no value>" if _nil(a) else a for a in args])


_HTML = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\x00": "\ufffd"}


def html_escape(s: str) -> str:
    if not any(c in s for c in _HTML):
        return s
    return "".join(_HTML.get(c, c) for c in s)


def js_escape(s: str) -> str:
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == "'":
            out.append("\\'")
        elif c == '"':
            out.append('\\"')
        elif c == "<":
            out.append("\\u003C")
        elif c == ">":
            out.append("\\u003E")
        elif c == "&":
            out.append("\\u0026")
        elif c == "=":
            out.append("\\u003D")
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) < 0x80 or c.isprintable():
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04X}")
    return "".join(out)


_URL_SAFE = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def query_escape(s: str) -> str:
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        if b in _URL_SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _html(*args) -> str:
    return html_escape(eval_args(args))


def _js(*args) -> str:
    return js_escape(eval_args(args))


def _urlquery(*args) -> str:
    return query_escape(eval_args(args))


def _call(fn, *args):
    if _nil(fn):
        raise FuncError("call of nil")
    if not callable(fn) or is_struct(fn):
        raise FuncError(f"non-function of type {go_type_name(fn)}")
    return fn(*args)


BUILTINS: dict[str, FuncSpec] = {
    "and": FuncSpec(None, (T_VALUE,), T_VALUE, lazy=True),
    "or": FuncSpec(None, (T_VALUE,), T_VALUE, lazy=True),
    "not": FuncSpec(_not, (T_VALUE,)),
    "call": FuncSpec(_call, (T_VALUE,), T_VALUE),
    "eq": FuncSpec(_eq, (T_VALUE,), T_VALUE),
    "ne": FuncSpec(_ne, (T_VALUE, T_VALUE)),
    "lt": FuncSpec(_lt, (T_VALUE, T_VALUE)),
    "le": FuncSpec(_le, (T_VALUE, T_VALUE)),
    "gt": FuncSpec(_gt, (T_VALUE, T_VALUE)),
    "ge": FuncSpec(_ge, (T_VALUE, T_VALUE)),
    "index": FuncSpec(_index, (T_VALUE,), T_VALUE),
    "slice": FuncSpec(_builtin_slice, (T_VALUE,), T_VALUE),
    "len": FuncSpec(_len, (T_VALUE,)),
    "print": FuncSpec(_print, (), T_ANY),
    "printf": FuncSpec(_printf, (T_STR,), T_ANY),
    "println": FuncSpec(_println, (), T_ANY),
    "html": FuncSpec(_html, (), T_ANY),
    "js": FuncSpec(_js, (), T_ANY),
    "urlquery": FuncSpec(_urlquery, (), T_ANY),
}

__all__ = ["BUILTINS", "FuncSpec", "FuncError"]
