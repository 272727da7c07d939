"""Sprig math: int64 arithmetic via cast.ToInt64, float math via decimal, round/floor/ceil, seq."""

from __future__ import annotations

import decimal
import math

from .funcs import FuncError
from .sprig_core import wrap64, to_float64, to_int64
from .values import Int64, IntList


def _add(*args):
    return Int64(wrap64(sum(to_int64(a) for a in args)))


def _add1(a):
    return Int64(wrap64(to_int64(a) + 1))


def _sub(a, b):
    return Int64(wrap64(to_int64(a) - to_int64(b)))


def _mul(a, *rest):
    v = to_int64(a)
    for b in rest:
        v = wrap64(v * to_int64(b))
    return Int64(v)


def _go_div(a: int, b: int) -> int:
    if b == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(a) // abs(b)
    return wrap64(q if (a >= 0) == (b >= 0) else -q)


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


def _to_decimal(s):
    try:
        return Int64(int(s, 8))
    except ValueError:
        return Int64(0)
