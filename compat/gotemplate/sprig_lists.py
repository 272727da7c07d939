"""Sprig list and dict functions (list, dict, get/set, first/rest, append, uniq, has, slice, dig, ...)."""

from __future__ import annotations

import copy

from .funcs import FuncError
from .sprig_core import to_bytes, is_nil, kind_error, deep_equal, empty, go_kind, strslice, strval, to_int64
from .values import NIL_LIST, StringList, go_type_name


def _list(*args):
    return list(args)


def _dict(*args):
    d = {}
    for i in range(0, len(args), 2):
        k = strval(args[i])
        d[k] = args[i + 1] if i + 1 < len(args) else ""
    return d


def _get(d, key):
    if d is None:
        return ""
    return d.get(key, "") if key in d else ""


def _set(d, key, value):
    if d is None:
        raise FuncError("assignment to entry in nil map")
    d[key] = value
    return d


def _unset(d, key):
    if d is not None:
        d.pop(key, None)
    return d


def _has_key(d, key):
    return d is not None and key in d


def _keys(*dicts):
    out = StringList()
    for d in dicts:
        if d:
            out.extend(d.keys())
    return out


def _values(d):
    return list(d.values()) if d else []


def _pick(d, *keys):
    return {k: d[k] for k in keys if d and k in d}


def _omit(d, *keys):
    return {k: v for k, v in (d or {}).items() if k not in keys}


def _seq_of(v, what):
    if isinstance(v, (list, tuple)):
        return v
    raise kind_error(what, v)


def _first(v):
    lst = _seq_of(v, "find first")
    return lst[0] if lst else None


def _last(v):
    lst = _seq_of(v, "find last")
    return lst[-1] if lst else None


def _rest(v):
    lst = _seq_of(v, "find rest")
    return list(lst[1:]) if lst else NIL_LIST


def _initial(v):
    lst = _seq_of(v, "find initial")
    return list(lst[:-1]) if lst else NIL_LIST


def _append(v, x):
    lst = _seq_of(v, "push")
    return list(lst) + [x]


def _prepend(v, x):
    lst = _seq_of(v, "prepend")
    return [x] + list(lst)


def _uniq(v):
    lst = _seq_of(v, "find uniq")
    out = []
    for x in lst:
        if not any(deep_equal(x, y) for y in out):
            out.append(x)
    return out


def _compact(v):
    lst = _seq_of(v, "compact")
    return [x for x in lst if not empty(x)]


def _reverse(v):
    lst = _seq_of(v, "find reverse")
    return list(reversed(lst))


def _without(v, *omit):
    lst = _seq_of(v, "find without")
    return [x for x in lst if not any(deep_equal(x, o) for o in omit)]


def _has(needle, haystack):
    if is_nil(haystack):
        return False
    if not isinstance(haystack, (list, tuple)):
        raise FuncError(f"Cannot find has on type {go_kind(haystack)}")
    return any(deep_equal(needle, x) for x in haystack)


def _sort_alpha(v):
    if isinstance(v, (list, tuple)):
        return StringList(sorted(strslice(v), key=to_bytes))
    return StringList([strval(v)])


def _sprig_slice(v, *indices):
    if not isinstance(v, (list, tuple)):
        if is_nil(v):
            raise FuncError("runtime error: invalid memory address or nil pointer dereference")
        raise FuncError(f"list should be type of slice or array but {go_kind(v)}")
    n = len(v)
    if n == 0:
        return None
    start = to_int64(indices[0]) if indices else 0
    end = to_int64(indices[1]) if len(indices) >= 2 else n
    if not (0 <= start <= end <= n):
        raise FuncError("reflect.Value.Slice: slice index out of bounds")
    return list(v[start:end])


def _concat(*lists):
    out = []
    for v in lists:
        if not isinstance(v, (list, tuple)):
            raise FuncError(f"Cannot concat type {go_kind(v) if not is_nil(v) else 'invalid'} as list")
        out.extend(v)
    return out


def _dig(*ps):
    if len(ps) < 3:
        raise FuncError("dig needs at least three arguments")
    d, default = ps[-1], ps[-2]
    keys = ps[:-2]
    for k in keys:
        if not isinstance(k, str):
            raise FuncError(f"interface conversion: interface {{}} is {go_type_name(k)}, not string")
    if not isinstance(d, dict):
        raise FuncError(f"interface conversion: interface {{}} is {go_type_name(d)}, not map[string]interface {{}}")
    for i, k in enumerate(keys):
        if k not in d:
            return default
        step = d[k]
        if i == len(keys) - 1:
            return step
        if not isinstance(step, dict):
            raise FuncError(
                f"interface conversion: interface {{}} is {go_type_name(step)}, not map[string]interface {{}}")
        d = step
    return default


def _pluck(name, *dicts):
    return [d[name] for d in dicts if d is not None and name in d]


def _deep_copy(v):
    return copy.deepcopy(v)
