"""Go value formatting: strconv quoting, fmt's %v and printf verbs, Go type names, float formatting."""

from __future__ import annotations

import math
import re

from .godate import as_go_time
from .values import MISSING, go_type_name, is_struct, struct_items

# ---------------------------------------------------------------- strconv

_SHORT_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(s: str, q: str = '"', ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteRune when q is "'")."""
    out = [q]
    for c in s:
        if c == q or c == "\\":
            out.append("\\" + c)
        elif c.isprintable() and not (ascii_only and ord(c) >= 0x80):
            out.append(c)
        elif c in _SHORT_ESC:
            out.append(_SHORT_ESC[c])
        else:
            cp = ord(c)
            if 0xDC80 <= cp <= 0xDCFF:  # a raw byte carried by surrogateescape
                out.append(f"\\x{cp - 0xDC00:02x}")
            elif cp < 0x20 or cp == 0x7F:
                out.append(f"\\x{cp:02x}")
            elif cp < 0x10000:
                out.append(f"\\u{cp:04x}")
            else:
                out.append(f"\\U{cp:08x}")
    out.append(q)
    return "".join(out)


_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def _unescape(body: str, quote_char: str) -> str:
    buf = bytearray()
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            if c == quote_char:
                raise ValueError("invalid syntax")
            buf += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("invalid syntax")
        e = body[i + 1]
        i += 2
        if e in _ESCAPES:
            if (e == "'" and quote_char != "'") or (e == '"' and quote_char != '"'):
                raise ValueError("invalid syntax")
            buf.append(_ESCAPES[e])
        elif e == "x":
            buf.append(int(body[i:i + 2], 16)) if re.fullmatch(r"[0-9a-fA-F]{2}", body[i:i + 2]) else _bad()
            i += 2
        elif e in "uU":
            k = 4 if e == "u" else 8
            h = body[i:i + k]
            if not re.fullmatch(r"[0-9a-fA-F]{%d}" % k, h):
                _bad()
            cp = int(h, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                _bad()
            buf += chr(cp).encode()
            i += k
        elif e in "01234567":
            o = body[i - 1:i + 2]
            if not re.fullmatch(r"[0-7]{3}", o) or int(o, 8) > 255:
                _bad()
            buf.append(int(o, 8))
            i += 2
        else:
            _bad()
    return buf.decode("utf-8", "surrogateescape")


def _bad():
    raise ValueError("invalid syntax")


def unquote(s: str) -> str:
    """strconv.Unquote for "..." and `...` literals."""
    if len(s) >= 2 and s[0] == s[-1] == "`":
        return s[1:-1].replace("\r", "")
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return _unescape(s[1:-1], '"')
    raise ValueError("invalid syntax")


def unquote_char(s: str) -> int:
    """The rune value of a 'x' literal."""
    if len(s) == 2:
        raise ValueError("invalid syntax")
    if len(s) < 3 or s[0] != "'" or s[-1] != "'":
        raise ValueError(f"malformed character constant: {s}")
    body = _unescape(s[1:-1], "'")
    if len(body) != 1:
        raise ValueError(f"malformed character constant: {s}")
    return ord(body)


# ---------------------------------------------------------------- floats

def _digits(f: float) -> tuple[str, int]:
    """Shortest decimal digits and decimal-point position (value = 0.DIGITS * 10**dp)."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = (ip + fp).lstrip("0")
    lead = len(ip + fp) - len((ip + fp).lstrip("0"))
    dp = len(ip) + e - lead
    digits = digits.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e(digits: str, dp: int, prec: int, upper: bool = False) -> str:
    """%e from digit string; prec < 0 means all digits."""
    exp = dp - 1
    if prec < 0:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    else:
        m = digits[0] + ("." + digits[1:].ljust(prec, "0")[:prec] if prec > 0 else "")
    sign = "-" if exp < 0 else "+"
    es = f"{abs(exp):02d}"
    return m + ("E" if upper else "e") + sign + es


def _fmt_f(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def _special(f: float) -> str | None:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return None


def format_float_g(f: float, upper: bool = False) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64): what %v prints for a float64."""
    sp = _special(f)
    if sp:
        return sp
    neg = math.copysign(1.0, f) < 0
    if f == 0:
        return "-0" if neg else "0"
    digits, dp = _digits(f)
    exp = dp - 1
    if exp < -4 or exp >= 6:  # strconv uses precision 6 for this decision when shortest
        body = _fmt_e(digits, dp, -1, upper)
    else:
        body = _fmt_f(digits, dp)
    return ("-" if neg else "") + body


def format_float_json(f: float) -> str:
    """encoding/json's float64 encoding (ES6-like: exponent only below 1e-6 or from 1e21)."""
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    neg = f < 0
    digits, dp = _digits(f)
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        body = _fmt_e(digits, dp, -1)
        m, _, e = body.partition("e")
        sign, num = e[0], e[1:].lstrip("0") or "0"
        body = m + "e" + sign + num
    else:
        body = _fmt_f(digits, dp)
    return ("-" if neg else "") + body


# ---------------------------------------------------------------- %v

def format_value(v, plus: bool = False) -> str:
    """fmt's %v (or %+v) for a template value."""
    if v is None or v is MISSING:
        return "<nil>"
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return format_float_g(v)
    if t is list or t is tuple:
        return "[" + " ".join(format_value(x, plus) for x in v) + "]"
    if t is dict:
        return "map[" + " ".join(
            format_value(k, plus) + ":" + format_value(v[k], plus) for k in sorted_keys(v)
        ) + "]"
    if is_struct(v):
        if plus:
            return "{" + " ".join(n + ":" + format_value(x, plus) for n, x in struct_items(v)) + "}"
        return "{" + " ".join(format_value(x, plus) for _, x in struct_items(v)) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return format_float_g(float(v))
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (list, tuple)):
        return format_value(list(v), plus)
    t_ = as_go_time(v)
    if t_ is not None:
        return str(t_)
    if isinstance(v, dict):
        return format_value(dict(v), plus)
    return str(v)


def sorted_keys(d: dict) -> list:
    """Keys in Go's fmtsort order (strings lexicographic by bytes, numbers numeric)."""
    try:
        return sorted(d, key=_sort_key)
    except TypeError:
        return list(d)


def _sort_key(k):
    if isinstance(k, str):
        return (1, k.encode("utf-8", "surrogateescape"))
    if isinstance(k, bool):
        return (0, int(k))
    return (0, k)


def sprint(args) -> str:
    """fmt.Sprint: a space only between two operands that are both non-strings."""
    out = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = type(a) is str
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(format_value(a))
        prev_string = is_string
    return "".join(out)


def sprintln(args) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


# ---------------------------------------------------------------- printf

class _Spec:
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "width", "prec", "verb", "plus_v")

    def __init__(self):
        self.minus = self.plus = self.sharp = self.space = self.zero = self.plus_v = False
        self.width = None
        self.prec = None
        self.verb = "v"


def _pad(s: str, sp: _Spec, numeric: bool = False) -> str:
    w = sp.width
    if w is None or len(s) >= w:
        return s
    fill = w - len(s)
    if sp.minus:
        return s + " " * fill
    if sp.zero:
        if numeric and s[:1] in "+- ":
            return s[0] + "0" * fill + s[1:]
        return "0" * fill + s
    return " " * fill + s


def _bad_verb(sp: _Spec, v) -> str:
    """%!verb(type=value): the value is printed with %v under the same flags, width and precision."""
    verb = sp.verb
    if v is None or v is MISSING:
        return f"%!{verb}(<nil>)"
    sp.verb = "v"
    try:
        shown = fmt_one(v, sp)
    finally:
        sp.verb = verb
    return f"%!{verb}({go_type_name(v)}={shown})"


def _fmt_int(v: int, sp: _Spec, orig=None) -> str:
    verb = sp.verb
    neg = v < 0
    a = -v if neg else v
    if verb in "vd":
        body = str(a)
    elif verb == "b":
        body = format(a, "b")
        if sp.sharp:
            body = "0b" + body
    elif verb == "o":
        body = format(a, "o")
        if sp.sharp:
            body = "0" + body
    elif verb == "O":
        body = "0o" + format(a, "o")
    elif verb == "x":
        body = format(a, "x")
        if sp.sharp:
            body = "0x" + body
    elif verb == "X":
        body = format(a, "X")
        if sp.sharp:
            body = "0X" + body
    elif verb == "c":
        return _pad(_rune(v), sp)
    elif verb == "q":
        return _pad(quote(_rune(v), "'", sp.plus), sp)
    elif verb == "U":
        s = f"U+{v:04X}"
        if sp.sharp and _rune(v).isprintable():
            s += " '" + _rune(v) + "'"
        return _pad(s, sp)
    else:
        return _bad_verb(sp, v if orig is None else orig)
    if sp.prec is not None:
        body = body.rjust(sp.prec, "0") if not (sp.prec == 0 and v == 0) else ""
    sign = "-" if neg else ("+" if sp.plus else (" " if sp.space else ""))
    s = sign + body
    if sp.prec is not None:
        saved = sp.zero
        sp.zero = False
        out = _pad(s, sp, True)
        sp.zero = saved
        return out
    return _pad(s, sp, True)


def _rune(v: int) -> str:
    try:
        if 0xD800 <= v <= 0xDFFF:
            return "\ufffd"
        return chr(v)
    except (ValueError, OverflowError):
        return "\ufffd"


def _fmt_float(v: float, sp: _Spec) -> str:
    verb = sp.verb
    sp_ = _special(v)
    if sp_:
        s = sp_
        if s == "+Inf" and sp.space and not sp.plus:
            s = " Inf"
        saved = sp.zero
        sp.zero = False
        out = _pad(s, sp)
        sp.zero = saved
        return out
    prec = sp.prec
    if verb in "vgG":
        if prec is None:
            s = format_float_g(v, verb == "G")
        else:
            s = "%.*g" % (max(prec, 1), v)
            if verb == "G":
                s = s.upper()
    elif verb in "eE":
        s = "%.*e" % (6 if prec is None else prec, v)
        if verb == "E":
            s = s.upper()
    elif verb in "fF":
        s = "%.*f" % (6 if prec is None else prec, v)
    elif verb in "xX":
        s = _hex_float(v, prec)
        if verb == "X":
            s = s.upper()
    else:
        return _bad_verb(sp, v)
    if sp.plus and not s.startswith("-"):
        s = "+" + s
    elif sp.space and not s.startswith("-"):
        s = " " + s
    return _pad(s, sp, True)


def _hex_float(v: float, prec) -> str:
    """strconv's 'x' format: 0x1.8p+00 (shortest mantissa unless a precision is given)."""
    h = float.hex(abs(v))  # 0x1.8000000000000p+0
    mant, _, exp = h[2:].partition("p")
    ip, _, fp = mant.partition(".")
    fp = fp.rstrip("0")
    if prec is not None:
        # round the hex fraction to prec digits
        bits = int(ip + fp.ljust(13, "0"), 16)
        shift = 4 * (13 - prec)
        if shift > 0:
            half = 1 << (shift - 1)
            rem = bits & ((1 << shift) - 1)
            bits >>= shift
            if rem > half or (rem == half and bits & 1):
                bits += 1
        digits = format(bits, "x")
        lead = 1 if prec == 0 else len(digits) - prec
        ip, fp = digits[:lead] or "0", digits[lead:]
        if int(ip, 16) >= 2:  # rounding carried into the next power of two
            ip, fp = "1", fp
            exp = str(int(exp) + 1)
    e = int(exp)
    if v == 0:
        e = 0
    s = "0x" + ip + ("." + fp if fp else "") + "p" + ("-" if e < 0 else "+") + f"{abs(e):02d}"
    return ("-" if math.copysign(1.0, v) < 0 else "") + s


def _fmt_str(v: str, sp: _Spec) -> str:
    verb = sp.verb
    if verb in "vs":
        s = v if sp.prec is None else v[:sp.prec]
        return _pad(s, sp)
    if verb == "q":
        s = v if sp.prec is None else v[:sp.prec]
        if sp.sharp and "`" not in s and all(c == "\t" or c.isprintable() for c in s):
            return _pad("`" + s + "`", sp)
        return _pad(quote(s, '"', sp.plus), sp)
    if verb in "xX":
        b = v.encode("utf-8", "surrogateescape")
        if sp.prec is not None:
            b = b[:sp.prec]
        sep = " " if sp.space else ""
        hx = sep.join((("0x" if verb == "x" else "0X") if sp.sharp else "") + format(x, "02" + verb) for x in b)
        if sp.sharp and not sp.space:
            hx = ("0x" if verb == "x" else "0X") + "".join(format(x, "02" + verb) for x in b)
        return _pad(hx, sp)
    return _bad_verb(sp, v)


def fmt_one(v, sp: _Spec, depth: int = 0) -> str:
    verb = sp.verb
    if verb == "T":
        return _pad(go_type_name(v), sp)
    if v is None or v is MISSING:
        if verb == "v":
            return _pad("<nil>", sp)
        return _bad_verb(sp, v)
    t = type(v)
    if t is bool or isinstance(v, bool):
        if verb in "vt":
            return _pad("true" if v else "false", sp)
        return _bad_verb(sp, v)
    if t is int or isinstance(v, int):
        return _fmt_int(int(v), sp, v)
    if t is float or isinstance(v, float):
        return _fmt_float(float(v), sp)
    if t is str or isinstance(v, str):
        return _fmt_str(str(v), sp)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_elem(x, sp) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(_elem(k, sp) + ":" + _elem(v[k], sp) for k in sorted_keys(v)) + "]"
    if is_struct(v):
        if sp.plus_v:
            return "{" + " ".join(n + ":" + _elem(x, sp) for n, x in struct_items(v)) + "}"
        return "{" + " ".join(_elem(x, sp) for _, x in struct_items(v)) + "}"
    return _pad(str(v), sp)


def _elem(x, sp: _Spec) -> str:
    if x is None or x is MISSING:  # a nil interface inside a container: <nil>, any verb, no padding
        return "<nil>"
    return fmt_one(x, sp, 1)


def sprintf(fmt: str, args: list) -> str:
    out = []
    n = len(fmt)
    i = 0
    argi = 0
    reordered = False
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        sp = _Spec()
        while i < n and fmt[i] in "+-# 0":
            c = fmt[i]
            if c == "+":
                sp.plus = True
            elif c == "-":
                sp.minus = True
                sp.zero = False
            elif c == "#":
                sp.sharp = True
            elif c == " ":
                sp.space = True
            elif c == "0":
                sp.zero = not sp.minus
            i += 1
        # argument index [n]
        i, argi, ok_idx = _arg_index(fmt, i, argi, len(args))
        reordered = reordered or ok_idx is not None
        bad_index = ok_idx is False
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and type(args[argi]) is not bool:
                sp.width = args[argi]
                if sp.width < 0:
                    sp.minus = True
                    sp.width = -sp.width
                argi += 1
            else:
                out.append("%!(BADWIDTH)")
                argi += 1
        else:
            k = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > k:
                sp.width = int(fmt[k:i])
        if i < n and fmt[i] == ".":
            i += 1
            i, argi, ok_idx2 = _arg_index(fmt, i, argi, len(args))
            bad_index = bad_index or ok_idx2 is False
            reordered = reordered or ok_idx2 is not None
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and type(args[argi]) is not bool and args[argi] >= 0:
                    sp.prec = args[argi]
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                k = i
                while i < n and fmt[i].isdigit():
                    i += 1
                sp.prec = int(fmt[k:i]) if i > k else 0
        i, argi, ok_idx3 = _arg_index(fmt, i, argi, len(args))
        reordered = reordered or ok_idx3 is not None
        if bad_index or ok_idx3 is False:
            out.append("%!" + (fmt[i] if i < n else "") + "(BADINDEX)")
            i += 1
            continue
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        sp.verb = verb
        if verb == "v" and sp.plus:  # %+v: field names for structs, no signs on numbers
            sp.plus = False
            sp.plus_v = True
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        v = args[argi]
        argi += 1
        if verb == "v" and sp.sharp:
            out.append(_go_syntax(v))
            continue
        out.append(fmt_one(v, sp))
    if not reordered and argi < len(args):
        extra = ", ".join(
            ("<nil>" if a is None else go_type_name(a) + "=" + format_value(a)) for a in args[argi:]
        )
        out.append("%!(EXTRA " + extra + ")")
    return "".join(out)


def _arg_index(fmt: str, i: int, argi: int, nargs: int):
    """Parse an optional [n] argument index; returns (i, argi, None|True|False)."""
    if i >= len(fmt) or fmt[i] != "[":
        return i, argi, None
    k = fmt.find("]", i)
    if k < 0:
        return i, argi, False
    try:
        idx = int(fmt[i + 1:k])
    except ValueError:
        return k + 1, argi, False
    if idx < 1 or idx > nargs:
        return k + 1, argi, False
    return k + 1, idx - 1, True


def _go_syntax(v) -> str:
    """%#v (best effort)."""
    if v is None:
        return "<nil>"
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return format_value(v)
    if isinstance(v, (list, tuple)):
        return "[]interface {}{" + ", ".join(_go_syntax(x) for x in v) + "}"
    if isinstance(v, dict):
        return "map[string]interface {}{" + ", ".join(
            quote(str(k)) + ":" + _go_syntax(v[k]) for k in sorted_keys(v)) + "}"
    if is_struct(v):
        return go_type_name(v) + "{" + ", ".join(n + ":" + _go_syntax(x) for n, x in struct_items(v)) + "}"
    return str(v)


__all__ = [
    "quote", "unquote", "unquote_char", "format_value", "format_float_g", "format_float_json",
    "sprint", "sprintln", "sprintf", "sorted_keys",
]
