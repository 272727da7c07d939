"""Go time values for templates: sprig's now/date/dateInZone/unixEpoch/htmlDate and Go layout formatting."""

from __future__ import annotations

import datetime as _dt
import time as _time

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_START = _time.monotonic()


class GoTime:
    """A Go time.Time: an aware datetime plus nanoseconds and an optional monotonic reading."""

    __slots__ = ("dt", "nsec", "mono")

    def __init__(self, dt: _dt.datetime, nsec: int | None = None, mono: float | None = None):
        if dt.tzinfo is None:
            dt = dt.astimezone()
        self.dt = dt
        self.nsec = dt.microsecond * 1000 if nsec is None else nsec
        self.mono = mono

    @classmethod
    def now(cls) -> "GoTime":
        ns = _time.time_ns()
        dt = _dt.datetime.fromtimestamp(ns // 1_000_000_000, _dt.timezone.utc).astimezone()
        return cls(dt.replace(microsecond=(ns % 1_000_000_000) // 1000), ns % 1_000_000_000,
                   _time.monotonic() - _START)

    def __str__(self) -> str:
        s = go_format(self, "2006-01-02 15:04:05.999999999 -0700 MST")
        if self.mono is not None:
            s += f" m=+{self.mono:.9f}"
        return s

    def unix(self) -> int:
        return int(self.dt.timestamp() // 1)

    def in_zone(self, tz: _dt.tzinfo) -> "GoTime":
        return GoTime(self.dt.astimezone(tz), self.nsec)


def as_go_time(v) -> GoTime | None:
    if isinstance(v, GoTime):
        return v
    if isinstance(v, _dt.datetime):
        return GoTime(v)
    return None


def _zone_name(dt: _dt.datetime) -> str:
    name = dt.tzname() or ""
    if not name or name[0] in "+-" or name.startswith("UTC") and len(name) > 3:
        off = dt.utcoffset() or _dt.timedelta(0)
        if off == _dt.timedelta(0):
            return "UTC"
        return _offset(dt, "-0700")  # Go prints an unnamed zone as -0700
    return name


def _offset(dt: _dt.datetime, style: str, z: bool = False) -> str:
    off = dt.utcoffset() or _dt.timedelta(0)
    secs = int(off.total_seconds())
    if z and secs == 0:
        return "Z"
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    h, m, s = secs // 3600, secs % 3600 // 60, secs % 60
    if style == "-07":
        return f"{sign}{h:02d}"
    if style == "-0700":
        return f"{sign}{h:02d}{m:02d}"
    if style == "-07:00":
        return f"{sign}{h:02d}:{m:02d}"
    if style == "-070000":
        return f"{sign}{h:02d}{m:02d}{s:02d}"
    return f"{sign}{h:02d}:{m:02d}:{s:02d}"


_TZ_STYLES = ["-07:00:00", "-070000", "-07:00", "-0700", "-07"]


def go_format(t: GoTime, layout: str) -> str:
    """time.Time.Format with a Go reference layout (Mon Jan 2 15:04:05 MST 2006)."""
    dt = t.dt
    out = []
    i = 0
    n = len(layout)
    while i < n:
        rest = layout[i:]
        c = layout[i]
        tok = None
        if rest.startswith("January"):
            tok, val = "January", _MONTHS[dt.month - 1]
        elif rest.startswith("Jan"):
            tok, val = "Jan", _MONTHS[dt.month - 1][:3]
        elif rest.startswith("Monday"):
            tok, val = "Monday", _DAYS[dt.weekday()]
        elif rest.startswith("Mon"):
            tok, val = "Mon", _DAYS[dt.weekday()][:3]
        elif rest.startswith("MST"):
            tok, val = "MST", _zone_name(dt)
        elif rest.startswith("2006"):
            tok, val = "2006", f"{dt.year:04d}"
        elif rest.startswith("002"):
            tok, val = "002", f"{dt.timetuple().tm_yday:03d}"
        elif c == "0" and i + 1 < n and layout[i + 1] in "123456":
            tok = layout[i:i + 2]
            val = {"01": f"{dt.month:02d}", "02": f"{dt.day:02d}", "03": f"{(dt.hour % 12) or 12:02d}",
                   "04": f"{dt.minute:02d}", "05": f"{dt.second:02d}", "06": f"{dt.year % 100:02d}"}[tok]
        elif rest.startswith("15"):
            tok, val = "15", f"{dt.hour:02d}"
        elif c == "1":
            tok, val = "1", str(dt.month)
        elif c == "2":
            tok, val = "2", str(dt.day)
        elif rest.startswith("__2"):
            tok, val = "__2", f"{dt.timetuple().tm_yday:3d}"
        elif rest.startswith("_2") and not rest.startswith("_2006"):
            tok, val = "_2", f"{dt.day:2d}"
        elif c == "3":
            tok, val = "3", str((dt.hour % 12) or 12)
        elif c == "4":
            tok, val = "4", str(dt.minute)
        elif c == "5":
            tok, val = "5", str(dt.second)
        elif rest.startswith("PM"):
            tok, val = "PM", "PM" if dt.hour >= 12 else "AM"
        elif rest.startswith("pm"):
            tok, val = "pm", "pm" if dt.hour >= 12 else "am"
        elif c in "-Z":
            for st in _TZ_STYLES:
                cand = ("Z" + st[1:]) if c == "Z" else st
                if rest.startswith(cand):
                    tok, val = cand, _offset(dt, st, z=c == "Z")
                    break
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            if not (j < n and layout[j].isdigit()):
                digits = j - i - 1
                frac = f"{t.nsec:09d}"[:digits]
                if ch == "9":
                    frac = frac.rstrip("0")
                    val = (c + frac) if frac else ""
                else:
                    val = c + frac
                tok = layout[i:j]
        if tok is None:
            out.append(c)
            i += 1
        else:
            out.append(val)
            i += len(tok)
    return "".join(out)


def _zone(name: str) -> _dt.tzinfo:
    if name == "Local":
        return _dt.datetime.now().astimezone().tzinfo or _dt.timezone.utc
    if name in ("UTC", ""):
        return _dt.timezone.utc
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(name)
    except Exception:
        return _dt.timezone.utc


def _to_time(v) -> GoTime:
    t = as_go_time(v)
    if t is not None:
        return t
    if isinstance(v, int) and not isinstance(v, bool):
        return GoTime(_dt.datetime.fromtimestamp(int(v), _dt.timezone.utc), 0)
    return GoTime.now()  # sprig: any other type formats the current time


def sprig_now() -> GoTime:
    return GoTime.now()


def sprig_date(fmt: str, v) -> str:
    return go_format(_to_time(v).in_zone(_zone("Local")), fmt)


def sprig_date_in_zone(fmt: str, v, zone: str) -> str:
    return go_format(_to_time(v).in_zone(_zone(zone)), fmt)


def sprig_html_date(v) -> str:
    return sprig_date("2006-01-02", v)


def sprig_unix_epoch(v) -> str:
    t = as_go_time(v)
    if t is None:
        from .errors import FuncError
        raise FuncError("wrong type for value; expected time.Time")
    return str(t.unix())


def rfc3339nano(t: GoTime) -> str:
    """What encoding/json writes for a time.Time."""
    return go_format(t, "2006-01-02T15:04:05.999999999Z07:00")
