"""The Python data model of Go values: MISSING (invalid value), dataclass structs, go_field, Go type names, truth."""

from __future__ import annotations

import dataclasses
from typing import Any


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to (prints "<no value>")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()

_JSON_META = "go_json"


class NilList(list):
    """A nil Go slice held by a typed struct field: empty when printed/ranged, null in JSON."""

    __slots__ = ()


class NilDict(dict):
    """A nil Go map held by a typed struct field: empty when read, null in JSON."""

    __slots__ = ()


class StringList(list):
    """A Go []string (what sprig's splitList/keys/sortAlpha return): elements are concrete strings."""

    __slots__ = ()


class IntList(list):
    """A Go []int (sprig's until)."""

    __slots__ = ()


class Int64(int):
    """A Go int64 (sprig's math results): prints like int, but is not assignable to an int parameter."""

    __slots__ = ()


NIL_LIST = NilList()
NIL_DICT = NilDict()


def go_field(json: str | None = None) -> dict:
    """Field metadata carrying a Go struct tag, e.g. field(metadata=go_field(json="name,omitempty"))."""
    return {_JSON_META: json}


class _StructInfo:
    __slots__ = ("go_name", "fields", "json_fields", "iface", "nil_as")

    def __init__(self, cls: type):
        self.go_name = getattr(cls, "__go_type__", None) or cls.__name__
        fs = [f for f in dataclasses.fields(cls)]
        self.fields = {f.name: f.name for f in fs}
        # Fields declared as Any hold Go interface values (error texts say "interface {}").
        self.iface = {f.name: _is_any_annotation(f.type) for f in fs}
        # What None means in a field: a nil slice/map for list/dict-typed fields, else nil interface.
        self.nil_as = {f.name: _nil_for_annotation(f.type) for f in fs}
        # (attribute, json name, omitempty) in declaration order; "-" fields dropped.
        jf = []
        for f in fs:
            tag = f.metadata.get(_JSON_META) if f.metadata else None
            name, omit = f.name, False
            if tag is not None:
                parts = tag.split(",")
                if parts[0] == "-" and len(parts) == 1:
                    continue
                if parts[0]:
                    name = parts[0]
                omit = "omitempty" in parts[1:]
            jf.append((f.name, name, omit))
        self.json_fields = jf


def _annotation_text(ann: Any) -> str:
    """A field annotation as normalized text, whether or not annotations are postponed (strings)."""
    if ann is Any:
        return "Any"
    if ann is object:
        return "object"
    text = ann if isinstance(ann, str) else (getattr(ann, "__name__", None) if isinstance(ann, type) else None) or repr(ann)
    text = text.replace(" ", "").replace("typing.", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional["):-1]
    return text.removesuffix("|None").removeprefix("None|")


def _is_any_annotation(ann: Any) -> bool:
    return _annotation_text(ann) in ("Any", "object")


def _nil_for_annotation(ann: Any):
    text = _annotation_text(ann)
    if text.startswith(("list", "List", "tuple", "Tuple", "Sequence")):
        return NIL_LIST
    if text.startswith(("dict", "Dict", "Mapping")):
        return NIL_DICT
    return None


_INFO: dict[type, _StructInfo] = {}


def struct_info(cls: type) -> _StructInfo:
    info = _INFO.get(cls)
    if info is None:
        info = _INFO[cls] = _StructInfo(cls)
    return info


_IS_STRUCT: dict[type, bool] = {str: False, int: False, float: False, bool: False, list: False,
                                 dict: False, tuple: False, type(None): False}


def is_struct(v: Any) -> bool:
    """Whether v is a dataclass instance (a Go struct); cached per type because it is asked often."""
    t = type(v)
    r = _IS_STRUCT.get(t)
    if r is None:
        r = _IS_STRUCT[t] = dataclasses.is_dataclass(t) and not isinstance(v, type)
    return r


def field_value(info: _StructInfo, v: Any, attr: str) -> Any:
    x = getattr(v, attr)
    if x is None:
        return info.nil_as[attr]
    return x


def struct_items(v: Any):
    info = struct_info(type(v))
    return [(name, field_value(info, v, name)) for name in info.fields]


def go_type_name(v: Any) -> str:
    """What %T (and Go's error messages) call the type of v."""
    if v is None or v is MISSING:
        return "<nil>"
    t = type(v)
    if t is str:
        return "string"
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is Int64:
        return "int64"
    if t is float:
        return "float64"
    if t is list or t is tuple or t is NilList:
        return "[]interface {}"
    if t is StringList:
        return "[]string"
    if t is IntList:
        return "[]int"
    if t is dict or t is NilDict:
        return "map[string]interface {}"
    if is_struct(v):
        return struct_info(t).go_name
    if type(v).__name__ in ("GoTime", "datetime"):
        return "time.Time"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return t.__name__


def go_json_value(v: Any) -> Any:
    """Data as Go's encoding/json decodes it into interface{}: every number becomes a float64.

    Use it for JSON-sourced maps/lists (tool parameters, function_call arguments, metadata) so
    that printing (1234567 -> 1.234567e+06), eq and index behave as in LocalAI.
    """
    t = type(v)
    if t is int:
        return float(v)
    if t is dict:
        return {k: go_json_value(x) for k, x in v.items()}
    if t is list or t is tuple:
        return [go_json_value(x) for x in v]
    return v


def truth(v) -> bool:
    """Go's isTrue for the values of our data model (structs are always true)."""
    if v is None or v is MISSING:
        return False
    t = type(v)
    if t is str or t is list or t is tuple or t is dict:
        return len(v) > 0
    if t is bool:
        return v
    if t is int or t is float or t is Int64:
        return v != 0
    if is_struct(v):
        return True
    try:
        return bool(v)
    except Exception:
        return True
