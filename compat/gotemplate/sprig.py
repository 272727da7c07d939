"""Sprig (Masterminds/sprig v3) template functions that LocalAI's templates can use, with Go semantics."""

from __future__ import annotations

import base64
import binascii
import copy
import decimal
import hashlib
import math
import os
import re
import uuid
import zlib

from . import godate, gojson
from .funcs import T_ANY, T_BOOL, T_FLOAT, T_INT, T_MAP, T_STR, FuncError, FuncSpec
from .gofmt import format_value, quote
from .values import MISSING, NIL_LIST, Int64, IntList, StringList, go_type_name, is_struct

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# unicode.IsSpace
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                      "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_GO_SPACE_STR = "".join(sorted(_GO_SPACE))


def _nil(v) -> bool:
    return v is None or v is MISSING


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


def _wrap64(n: int) -> int:
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= (1 << 63) else n


def _parse_go_int(s: str, base0: bool = True):
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
    if _nil(v):
        return 0
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, int):
        return _wrap64(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return INT64_MIN
        return _wrap64(int(v))
    if isinstance(v, str):
        n = _parse_go_int(_trim_zero_decimal(v))
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
    if _nil(v):
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
    if _nil(v):
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
    return c in _GO_SPACE


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


def _bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _str(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _go_split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def strslice(v) -> list[str]:
    if isinstance(v, (list, tuple)):
        return StringList(strval(x) for x in v if not _nil(x))
    if _nil(v):
        return StringList()
    return StringList([strval(v)])


def _panic_kind(what: str, v) -> FuncError:
    if _nil(v):
        return FuncError("runtime error: invalid memory address or nil pointer dereference")
    return FuncError(f"Cannot {what} on type {go_kind(v)}")


# ---------------------------------------------------------------- strings

def _trim(s):
    return s.strip(_GO_SPACE_STR)


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
    return {f"_{i}": p for i, p in enumerate(_go_split(s, sep))}


def _split_list(sep, s):
    return StringList(_go_split(s, sep))


def _splitn(sep, n, s):
    """strings.SplitN as a {_0: ..., _1: ...} map."""
    if n == 0:
        return {}
    if n < 0:
        parts = _go_split(s, sep)
    elif sep:
        parts = s.split(sep, n - 1)
    else:
        parts = list(s[: n - 1]) + ([s[n - 1:]] if len(s) >= n else [])
    return {f"_{i}": p for i, p in enumerate(parts)}


def _join(sep, v):
    return sep.join(strslice(v))


def _quote(*args):
    return " ".join(quote(strval(a)) for a in args if not _nil(a))


def _squote(*args):
    return " ".join("'" + strval(a) + "'" for a in args if not _nil(a))


def _cat(*args):
    return " ".join(strval(a) for a in args if not _nil(a))


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
    b = _bytes(s)
    n = len(b)
    if start < 0:
        _slice_bounds(None, end, n)
        if end < 0:
            raise FuncError(f"runtime error: slice bounds out of range [:{end}]")
        return _str(b[:end])
    if end < 0 or end > n:
        _slice_bounds(start, None, n)
        return _str(b[start:])
    _slice_bounds(start, end, n)
    return _str(b[start:end])


def _trunc(c, s):
    b = _bytes(s)
    n = len(b)
    if c < 0 and n + c > 0:
        return _str(b[n + c:])
    if c >= 0 and n > c:
        return _str(b[:c])
    return s


def _nospace(s):
    if s == "":
        return s
    b = _bytes(s)
    kept = [x for x in b if chr(x) not in _GO_SPACE]
    if len(kept) == len(b):
        return s
    return "".join(chr(x) for x in kept)


def _indent(n, s):
    pad = " " * n
    return pad + s.replace("\n", "\n" + pad)


def _nindent(n, s):
    return "\n" + _indent(n, s)


def _b64enc(s):
    return base64.b64encode(_bytes(s)).decode("ascii")


def _b64dec(s):
    try:
        return _str(_go_b64decode(s))
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
    n = _parse_go_int(s, base0=False)
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


# ---------------------------------------------------------------- math

def _add(*args):
    return Int64(_wrap64(sum(to_int64(a) for a in args)))


def _add1(a):
    return Int64(_wrap64(to_int64(a) + 1))


def _sub(a, b):
    return Int64(_wrap64(to_int64(a) - to_int64(b)))


def _mul(a, *rest):
    v = to_int64(a)
    for b in rest:
        v = _wrap64(v * to_int64(b))
    return Int64(v)


def _go_div(a: int, b: int) -> int:
    if b == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(a) // abs(b)
    return _wrap64(q if (a >= 0) == (b >= 0) else -q)


def _div(a, b):
    return Int64(_go_div(to_int64(a), to_int64(b)))


def _mod(a, b):
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    return Int64(x - _go_div(x, y) * y)


def _max(a, *rest):
    v = to_int64(a)
    for b in rest:
        v = max(v, to_int64(b))
    return Int64(v)


def _min(a, *rest):
    v = to_int64(a)
    for b in rest:
        v = min(v, to_int64(b))
    return Int64(v)


def _to_int(v):
    return to_int64(v)


def _to_int64(v):
    return Int64(to_int64(v))


def _until(n):
    return IntList(range(n)) if n >= 0 else IntList(range(0, n, -1))


# ---------------------------------------------------------------- lists & dicts

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
    raise _panic_kind(what, v)


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
    if _nil(haystack):
        return False
    if not isinstance(haystack, (list, tuple)):
        raise FuncError(f"Cannot find has on type {go_kind(haystack)}")
    return any(deep_equal(needle, x) for x in haystack)


def _sort_alpha(v):
    if isinstance(v, (list, tuple)):
        return StringList(sorted(strslice(v), key=_bytes))
    return StringList([strval(v)])


def _sprig_slice(v, *indices):
    if not isinstance(v, (list, tuple)):
        if _nil(v):
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


# ---------------------------------------------------------------- regex (RE2 subset via Python re)

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


# ---------------------------------------------------------------- json & types

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
    return go_kind(v) if not _nil(v) else "invalid"


def _type_is(t, v):
    return t == go_type_name(v)


def _kind_is(k, v):
    return k == _kind_of(v)


# ---------------------------------------------------------------- float math (shopspring/decimal)

def _dec(v) -> "decimal.Decimal":
    return decimal.Decimal(repr(to_float64(v)))


def _dec_float(d) -> float:
    return float(d)


def _decimal_op(first, rest, op):
    acc = _dec(first)
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        for b in rest:
            acc = op(acc, _dec(b))
    return _dec_float(acc)


def _div_dec(a, b):
    if b == 0:
        raise FuncError("decimal division by 0")
    q = a / b
    return q.quantize(decimal.Decimal(1).scaleb(-16), rounding=decimal.ROUND_HALF_UP)


def _addf(*args):
    return _decimal_op(0.0, args, lambda a, b: a + b)


def _add1f(a):
    return _decimal_op(a, [1], lambda x, y: x + y)


def _subf(a, *rest):
    return _decimal_op(a, rest, lambda x, y: x - y)


def _mulf(a, *rest):
    return _decimal_op(a, rest, lambda x, y: x * y)


def _divf(a, *rest):
    return _decimal_op(a, rest, _div_dec)


def _maxf(a, *rest):
    v = to_float64(a)
    for b in rest:
        v = max(v, to_float64(b))
    return v


def _minf(a, *rest):
    v = to_float64(a)
    for b in rest:
        v = min(v, to_float64(b))
    return v


def _round(a, places, *round_on):
    on = to_float64(round_on[0]) if round_on else 0.5
    val = to_float64(a)
    pw = math.pow(10, places)
    digit = pw * val
    frac = math.modf(digit)[0]
    r = math.ceil(digit) if frac >= on else math.floor(digit)
    return r / pw


def _floor(a):
    return float(math.floor(to_float64(a)))


def _ceil(a):
    return float(math.ceil(to_float64(a)))


def _until_step(start, stop, step):
    out = []
    if stop < start:
        if step >= 0:
            return IntList()
        i = start
        while i > stop:
            out.append(i)
            i += step
        return IntList(out)
    if step <= 0:
        return IntList()
    i = start
    while i < stop:
        out.append(i)
        i += step
    return IntList(out)


def _seq(*params):
    n = len(params)
    if n == 1:
        start, end = 1, params[0]
        inc = -1 if end < start else 1
        r = _until_step(start, end + inc, inc)
    elif n == 2:
        start, end = params
        step = -1 if end < start else 1
        r = _until_step(start, end + step, step)
    elif n == 3:
        start, step, end = params
        inc = 1
        if end < start:
            inc = -1
            if step > 0:
                return ""
        r = _until_step(start, end + inc, step)
    else:
        return ""
    return " ".join(str(x) for x in r)


# ---------------------------------------------------------------- more lists, dicts, strings

def _concat(*lists):
    out = []
    for v in lists:
        if not isinstance(v, (list, tuple)):
            raise FuncError(f"Cannot concat type {go_kind(v) if not _nil(v) else 'invalid'} as list")
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


def _sha256sum(s):
    return hashlib.sha256(_bytes(s)).hexdigest()


def _sha1sum(s):
    return hashlib.sha1(_bytes(s)).hexdigest()


def _adler32sum(s):
    return str(zlib.adler32(_bytes(s)))


def _abbrev(width, s):
    if width < 4:
        return s
    b = _bytes(s)
    if len(b) <= width:
        return s
    return _str(b[: width - 3]) + "..."


def _plural(one, many, count):
    return one if count == 1 else many


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
    parts = []
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


def _b32enc(s):
    return base64.b32encode(_bytes(s)).decode("ascii")


def _b32dec(s):
    try:
        return _str(base64.b32decode(s))
    except (binascii.Error, ValueError):
        return "illegal base32 data at input byte 0"


def _to_decimal(s):
    try:
        return Int64(int(s, 8))
    except ValueError:
        return Int64(0)


def _regex_quote_meta(s):
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in s)


def _uuidv4():
    return str(uuid.uuid4())


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


S = FuncSpec
SPRIG: dict[str, FuncSpec] = {
    # strings
    "trim": S(_trim, (T_STR,)),
    "trimAll": S(_trim_all, (T_STR, T_STR)),
    "trimall": S(_trim_all, (T_STR, T_STR)),
    "trimPrefix": S(_trim_prefix, (T_STR, T_STR)),
    "trimSuffix": S(_trim_suffix, (T_STR, T_STR)),
    "upper": S(_go_upper, (T_STR,)),
    "lower": S(_go_lower, (T_STR,)),
    "title": S(_title, (T_STR,)),
    "replace": S(_replace, (T_STR, T_STR, T_STR)),
    "split": S(_split, (T_STR, T_STR)),
    "splitList": S(_split_list, (T_STR, T_STR)),
    "splitn": S(_splitn, (T_STR, T_INT, T_STR)),
    "join": S(_join, (T_STR, T_ANY)),
    "contains": S(_contains, (T_STR, T_STR)),
    "hasPrefix": S(_has_prefix, (T_STR, T_STR)),
    "hasSuffix": S(_has_suffix, (T_STR, T_STR)),
    "quote": S(_quote, (), T_ANY),
    "squote": S(_squote, (), T_ANY),
    "cat": S(_cat, (), T_ANY),
    "repeat": S(_repeat, (T_INT, T_STR)),
    "substr": S(_substr, (T_INT, T_INT, T_STR)),
    "trunc": S(_trunc, (T_INT, T_STR)),
    "nospace": S(_nospace, (T_STR,)),
    "indent": S(_indent, (T_INT, T_STR)),
    "nindent": S(_nindent, (T_INT, T_STR)),
    "b64enc": S(_b64enc, (T_STR,)),
    "b64dec": S(_b64dec, (T_STR,)),
    "toString": S(_to_string, (T_ANY,)),
    "toStrings": S(strslice, (T_ANY,)),
    "atoi": S(_atoi, (T_STR,)),
    "int": S(_to_int, (T_ANY,)),
    "int64": S(_to_int64, (T_ANY,)),
    "float64": S(to_float64, (T_ANY,)),
    "ternary": S(_ternary, (T_ANY, T_ANY, T_BOOL)),
    "coalesce": S(_coalesce, (), T_ANY),
    "default": S(_default, (T_ANY,), T_ANY),
    "empty": S(empty, (T_ANY,)),
    "fail": S(_fail, (T_STR,)),
    # math
    "add": S(_add, (), T_ANY),
    "add1": S(_add1, (T_ANY,)),
    "sub": S(_sub, (T_ANY, T_ANY)),
    "mul": S(_mul, (T_ANY,), T_ANY),
    "div": S(_div, (T_ANY, T_ANY)),
    "mod": S(_mod, (T_ANY, T_ANY)),
    "max": S(_max, (T_ANY,), T_ANY),
    "min": S(_min, (T_ANY,), T_ANY),
    "until": S(_until, (T_INT,)),
    # lists & dicts
    "list": S(_list, (), T_ANY),
    "tuple": S(_list, (), T_ANY),
    "dict": S(_dict, (), T_ANY),
    "get": S(_get, (T_MAP, T_STR)),
    "set": S(_set, (T_MAP, T_STR, T_ANY)),
    "unset": S(_unset, (T_MAP, T_STR)),
    "hasKey": S(_has_key, (T_MAP, T_STR)),
    "keys": S(_keys, (), T_MAP),
    "values": S(_values, (T_MAP,)),
    "pick": S(_pick, (T_MAP,), T_STR),
    "omit": S(_omit, (T_MAP,), T_STR),
    "first": S(_first, (T_ANY,)),
    "last": S(_last, (T_ANY,)),
    "rest": S(_rest, (T_ANY,)),
    "initial": S(_initial, (T_ANY,)),
    "append": S(_append, (T_ANY, T_ANY)),
    "push": S(_append, (T_ANY, T_ANY)),
    "prepend": S(_prepend, (T_ANY, T_ANY)),
    "uniq": S(_uniq, (T_ANY,)),
    "compact": S(_compact, (T_ANY,)),
    "reverse": S(_reverse, (T_ANY,)),
    "without": S(_without, (T_ANY,), T_ANY),
    "has": S(_has, (T_ANY, T_ANY)),
    "sortAlpha": S(_sort_alpha, (T_ANY,)),
    "slice": S(_sprig_slice, (T_ANY,), T_ANY),
    # regex
    "regexMatch": S(_regex_match, (T_STR, T_STR)),
    "regexFind": S(_regex_find, (T_STR, T_STR)),
    "regexFindAll": S(_regex_find_all, (T_STR, T_STR, T_INT)),
    "regexReplaceAll": S(_regex_replace_all, (T_STR, T_STR, T_STR)),
    "regexReplaceAllLiteral": S(_regex_replace_all_literal, (T_STR, T_STR, T_STR)),
    "regexSplit": S(_regex_split, (T_STR, T_STR, T_INT)),
    # dates
    "now": S(godate.sprig_now, ()),
    "date": S(godate.sprig_date, (T_STR, T_ANY)),
    "dateInZone": S(godate.sprig_date_in_zone, (T_STR, T_ANY, T_STR)),
    "date_in_zone": S(godate.sprig_date_in_zone, (T_STR, T_ANY, T_STR)),
    "htmlDate": S(godate.sprig_html_date, (T_ANY,)),
    "unixEpoch": S(godate.sprig_unix_epoch, (T_ANY,)),
    # json & types
    "toJson": S(_to_json, (T_ANY,)),
    "toPrettyJson": S(_to_pretty_json, (T_ANY,)),
    "toRawJson": S(_to_raw_json, (T_ANY,)),
    "fromJson": S(_from_json, (T_STR,)),
    "typeOf": S(_type_of, (T_ANY,)),
    "kindOf": S(_kind_of, (T_ANY,)),
    "typeIs": S(_type_is, (T_STR, T_ANY)),
    "kindIs": S(_kind_is, (T_STR, T_ANY)),
    # float math
    "addf": S(_addf, (), T_ANY),
    "add1f": S(_add1f, (T_ANY,)),
    "subf": S(_subf, (T_ANY,), T_ANY),
    "mulf": S(_mulf, (T_ANY,), T_ANY),
    "divf": S(_divf, (T_ANY,), T_ANY),
    "maxf": S(_maxf, (T_ANY,), T_ANY),
    "minf": S(_minf, (T_ANY,), T_ANY),
    "round": S(_round, (T_ANY, T_INT), T_FLOAT),
    "floor": S(_floor, (T_ANY,)),
    "ceil": S(_ceil, (T_ANY,)),
    "seq": S(_seq, (), T_INT),
    "untilStep": S(_until_step, (T_INT, T_INT, T_INT)),
    # more lists, dicts, strings, encodings, paths
    "concat": S(_concat, (), T_ANY),
    "dig": S(_dig, (), T_ANY),
    "pluck": S(_pluck, (T_STR,), T_MAP),
    "deepCopy": S(_deep_copy, (T_ANY,)),
    "sha256sum": S(_sha256sum, (T_STR,)),
    "sha1sum": S(_sha1sum, (T_STR,)),
    "adler32sum": S(_adler32sum, (T_STR,)),
    "abbrev": S(_abbrev, (T_INT, T_STR)),
    "plural": S(_plural, (T_STR, T_STR, T_INT)),
    "env": S(_env, (T_STR,)),
    "expandenv": S(_expandenv, (T_STR,)),
    "base": S(_go_base, (T_STR,)),
    "dir": S(_go_dir, (T_STR,)),
    "ext": S(_go_ext, (T_STR,)),
    "clean": S(_go_clean, (T_STR,)),
    "isAbs": S(lambda p: p.startswith("/"), (T_STR,)),
    "b32enc": S(_b32enc, (T_STR,)),
    "b32dec": S(_b32dec, (T_STR,)),
    "toDecimal": S(_to_decimal, (T_STR,)),
    "regexQuoteMeta": S(_regex_quote_meta, (T_STR,)),
    "uuidv4": S(_uuidv4, ()),
    # must* variants: failures are errors
    "mustFirst": S(_first, (T_ANY,)),
    "mustLast": S(_last, (T_ANY,)),
    "mustRest": S(_rest, (T_ANY,)),
    "mustInitial": S(_initial, (T_ANY,)),
    "mustAppend": S(_append, (T_ANY, T_ANY)),
    "mustPush": S(_append, (T_ANY, T_ANY)),
    "mustPrepend": S(_prepend, (T_ANY, T_ANY)),
    "mustUniq": S(_uniq, (T_ANY,)),
    "mustCompact": S(_compact, (T_ANY,)),
    "mustReverse": S(_reverse, (T_ANY,)),
    "mustWithout": S(_without, (T_ANY,), T_ANY),
    "mustHas": S(_has, (T_ANY, T_ANY)),
    "mustSlice": S(_sprig_slice, (T_ANY,), T_ANY),
    "mustToJson": S(_must_to_json, (T_ANY,)),
    "mustToPrettyJson": S(_must_to_pretty_json, (T_ANY,)),
    "mustToRawJson": S(_to_raw_json, (T_ANY,)),
    "mustRegexMatch": S(_must_regex_match, (T_STR, T_STR)),
    "mustRegexFind": S(_must_regex_find, (T_STR, T_STR)),
    "mustRegexFindAll": S(_must_regex_find_all, (T_STR, T_STR, T_INT)),
    "mustRegexReplaceAll": S(_must_regex_replace_all, (T_STR, T_STR, T_STR)),
    "mustRegexReplaceAllLiteral": S(_must_regex_replace_all_literal, (T_STR, T_STR, T_STR)),
    "mustRegexSplit": S(_must_regex_split, (T_STR, T_STR, T_INT)),
}

__all__ = ["SPRIG", "strval", "to_int64", "empty"]
