"""Go's regexp (RE2 syntax and semantics) on Python's re: the one translator sprig, post-processing and check-config use.

Go and Python agree on leftmost-first matching, but not on syntax or on what classes mean:
Go's `\\d \\w \\s \\b` and POSIX classes are ASCII, `$` without (?m) is the end of the text,
flags set mid-group last to the group's end, `{,3}` is literal text, and Go refuses
lookaround, backreferences, possessive and atomic groups. The pattern is parsed here the way
Go's regexp/syntax parses it (same errors, same words) and written out as an explicit Python
pattern: every class spelled as ranges, every flag scoped to the atom it governs. Python is
then compiled without re.ASCII, so (?i) folds Unicode letters as Go does.

Iteration follows Go too: FindAll, ReplaceAll and Split treat empty matches as Go's regexp
does, which Python's finditer/sub do not (an empty match right after a match).
"""
from __future__ import annotations

import re
import sys
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["GoRegexError", "GoRegex", "compile", "translate", "quote_meta"]

MAX_REPEAT = 1000
MAX_NESTING = 1000

# Go's regexp/syntax error codes (ErrorCode strings).
ERR_INVALID_CHAR_RANGE = "invalid character class range"
ERR_INVALID_ESCAPE = "invalid escape sequence"
ERR_INVALID_NAMED_CAPTURE = "invalid named capture"
ERR_INVALID_PERL_OP = "invalid or unsupported Perl syntax"
ERR_INVALID_REPEAT_OP = "invalid nested repetition operator"
ERR_INVALID_REPEAT_SIZE = "invalid repeat count"
ERR_MISSING_BRACKET = "missing closing ]"
ERR_MISSING_PAREN = "missing closing )"
ERR_MISSING_REPEAT_ARGUMENT = "missing argument to repetition operator"
ERR_TRAILING_BACKSLASH = "trailing backslash at end of expression"
ERR_UNEXPECTED_PAREN = "unexpected )"
ERR_NESTING_DEPTH = "expression nests too deeply"
ERR_DUPLICATE_NAME = "duplicate capture group name"
# Not Go's: a pattern Go accepts whose meaning Python's re cannot reproduce here.
UNSUPPORTED = "not supported by this server (Go accepts it)"


class GoRegexError(ValueError):
    """A pattern Go's regexp.Compile rejects, worded as Go words it, or one Go accepts that this
    translation cannot reproduce (`unsupported` True)."""

    def __init__(self, code: str, fragment: str, pattern: str):
        self.code = code
        self.fragment = fragment
        self.pattern = pattern
        self.unsupported = code == UNSUPPORTED
        super().__init__(f"error parsing regexp: {code}: `{fragment}`")


# --- character sets ---------------------------------------------------------------------------

Ranges = list[tuple[int, int]]
MAX_RUNE = 0x10FFFF

_PERL = {
    "d": [(0x30, 0x39)],
    "s": [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)],
    "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
}
_POSIX = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_WORD_CLASS = "[0-9A-Za-z_]"
_WORD_BOUNDARY = f"(?:(?<={_WORD_CLASS})(?!{_WORD_CLASS})|(?<!{_WORD_CLASS})(?={_WORD_CLASS}))"
_NOT_WORD_BOUNDARY = f"(?:(?<={_WORD_CLASS})(?={_WORD_CLASS})|(?<!{_WORD_CLASS})(?!{_WORD_CLASS}))"

# Go's unicode.Categories: the major classes exclude Cn (unassigned), as Go's tables do.
_CATEGORY_NAMES = {
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn",
    "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk",
    "Sm", "So", "Z", "Zl", "Zp", "Zs",
}
# Go's unicode.Scripts: valid in Go, but Python's unicodedata has no script property, so a
# pattern using one is refused here by name instead of being matched approximately.
_GO_SCRIPTS = frozenset("""
Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali
Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma
Cham Cherokee Chorasmian Common Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari
Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic
Grantha Greek Gujarati Gunjala_Gondi Gurmukhi Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew
Hiragana Imperial_Aramaic Inherited Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi
Kannada Katakana Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki Khudawadi Lao Latin Lepcha
Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean Marchen
Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi
Mongolian Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu
Nyiakeng_Puachue_Hmong Ogham Ol_Chiki Old_Hungarian Old_Italic Old_North_Arabian Old_Permic
Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong
Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan Saurashtra Sharada
Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese Syloti_Nagri Syriac
Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangsa Tangut Telugu Thaana Thai Tibetan
Tifinagh Tirhuta Toto Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square
""".split())
_category_lock = threading.Lock()
_category_ranges: dict[str, Ranges] = {}


def _unicode_category(name: str) -> Ranges:
    """Code point ranges of a general category (built once from unicodedata, on first use)."""
    with _category_lock:
        if not _category_ranges:
            spans: dict[str, Ranges] = {}
            prev, start = None, 0
            for cp in range(sys.maxunicode + 2):
                cat = unicodedata.category(chr(cp)) if cp <= sys.maxunicode else None
                if cat != prev:
                    if prev is not None:
                        spans.setdefault(prev, []).append((start, cp - 1))
                    prev, start = cat, cp
            for cat, rs in spans.items():
                _category_ranges[cat] = rs
                if cat != "Cn":
                    _category_ranges.setdefault(cat[0], []).extend(rs)
            for major in "CLMNPSZ":
                _category_ranges[major] = _normalize(_category_ranges.get(major, []))
        return _category_ranges.get(name, [])


def _normalize(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _negate(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in _normalize(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_RUNE:
        out.append((nxt, MAX_RUNE))
    return out


def _char(cp: int) -> str:
    """One code point written so that Python's re reads it literally, in or out of a class."""
    if cp < 0x80:
        c = chr(cp)
        return c if c.isalnum() else "\\x%02x" % cp
    return "\\u%04x" % cp if cp <= 0xFFFF else "\\U%08x" % cp


def _class_text(ranges: Ranges, negated: bool) -> str:
    ranges = _normalize(ranges)
    if not ranges:
        # An empty class matches nothing; its negation, anything.
        return "(?s:.)" if negated else "(?!)"
    body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)
    return f"[{'^' if negated else ''}{body}]"


# --- the parser -------------------------------------------------------------------------------


@dataclass
class _Flags:
    fold: bool = False  # i
    multiline: bool = False  # m (Go: not OneLine)
    dotnl: bool = False  # s
    ungreedy: bool = False  # U


@dataclass
class _Group:
    flags: _Flags  # the flags to restore when the group closes


@dataclass
class _Parsed:
    python: str
    names: dict[str, int] = field(default_factory=dict)
    n_groups: int = 0


class _Parser:
    def __init__(self, pattern: str):
        self.src = pattern
        self.i = 0
        self.out: list[str] = []
        self.flags = _Flags()
        self.stack: list[_Group] = []
        self.names: dict[str, int] = {}
        self.n_groups = 0
        # What a repetition operator would apply to: "atom", "op" (nothing: start, '(' or '|'),
        # or "repeat" (right after one; Go refuses a second).
        self.last = "op"
        self.last_repeat_at = -1

    def error(self, code: str, fragment: str) -> GoRegexError:
        return GoRegexError(code, fragment, self.src)

    def parse(self) -> _Parsed:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c == "(":
                self.open_group()
            elif c == "|":
                self.out.append("|")
                self.i += 1
                self.last = "op"
            elif c == ")":
                self.close_group()
            elif c == "^":
                self.atom("(?m:^)" if self.flags.multiline else "(?:^)", 1)
            elif c == "$":
                self.atom("(?m:$)" if self.flags.multiline else "(?:\\Z)", 1)
            elif c == ".":
                self.atom("(?s:.)" if self.flags.dotnl else ".", 1)
            elif c == "[":
                start = self.i
                ranges, negated = self.parse_class()
                self.atom_text(self.fold(_class_text(ranges, negated)), start)
            elif c in "*+?":
                self.repeat(c, self.i, self.i + 1)
            elif c == "{":
                parsed = self.parse_repeat_braces()
                if parsed is None:
                    self.atom("\\{", 1)  # Go: not a valid repeat, so a literal '{'
                else:
                    lo, hi, end = parsed
                    self.repeat((lo, hi), self.i, end)
            elif c == "\\":
                self.escape()
            else:
                self.atom(self.fold(_char(ord(c))), 1)
        if self.stack:
            raise self.error(ERR_MISSING_PAREN, src)
        return _Parsed("".join(self.out), dict(self.names), self.n_groups)

    # -- atoms and repetition --------------------------------------------------------------
    def fold(self, text: str) -> str:
        return f"(?i:{text})" if self.flags.fold else text

    def atom(self, text: str, width: int) -> None:
        self.atom_text(text, self.i)
        self.i += width

    def atom_text(self, text: str, start: int) -> None:
        self.out.append(text)
        self.last = "atom"

    def repeat(self, op: str | tuple[int, int | None], start: int, end: int) -> None:
        src = self.src
        non_greedy = end < len(src) and src[end] == "?"
        if non_greedy:
            end += 1
        if self.last == "repeat":
            raise self.error(ERR_INVALID_REPEAT_OP, src[self.last_repeat_at:end])
        if self.last == "op":
            raise self.error(ERR_MISSING_REPEAT_ARGUMENT, src[start:end])
        if isinstance(op, tuple):
            lo, hi = op
            text = f"{{{lo}}}" if hi == lo else f"{{{lo},}}" if hi is None else f"{{{lo},{hi}}}"
        else:
            text = op
        if non_greedy != self.flags.ungreedy:
            text += "?"
        # Every atom was written as one unit (a character, a class, a group), so the operator
        # applies to all of it.
        self.out.append(text)
        self.last = "repeat"
        self.last_repeat_at = start
        self.i = end

    def parse_repeat_braces(self) -> tuple[int, int | None, int] | None:
        """`{n}`, `{n,}`, `{n,m}` at self.i, as Go's parseRepeat reads them; None when the
        text is not a repeat (Go then takes the brace literally)."""
        m = re.compile(r"\{([0-9]+)(,([0-9]*))?\}").match(self.src, self.i)
        if m is None:
            return None
        lo_text, comma, hi_text = m.group(1), m.group(2), m.group(3)
        lo = int(lo_text) if len(lo_text) <= 8 else MAX_REPEAT + 1
        hi: int | None
        if comma is None:
            hi = lo
        elif hi_text == "":
            hi = None
        else:
            hi = int(hi_text) if len(hi_text) <= 8 else MAX_REPEAT + 1
        if lo > MAX_REPEAT or (hi is not None and (hi > MAX_REPEAT or hi < lo)):
            raise self.error(ERR_INVALID_REPEAT_SIZE, m.group(0))
        return lo, hi, m.end()

    # -- groups ----------------------------------------------------------------------------
    def open_group(self) -> None:
        src, i = self.src, self.i
        if len(self.stack) >= MAX_NESTING:
            raise self.error(ERR_NESTING_DEPTH, src)
        if not src.startswith("(?", i):
            self.push("(")
            self.n_groups += 1
            self.i += 1
            return
        t = src[i:]
        if (len(t) > 4 and t[2] == "P" and t[3] == "<") or (len(t) > 3 and t[2] == "<"):
            begin = 4 if t[2] == "P" else 3
            end = t.find(">")
            if end < 0:
                raise self.error(ERR_INVALID_NAMED_CAPTURE, t)
            name = t[begin:end]
            if not name or not all(ch == "_" or ch.isalnum() for ch in name):
                raise self.error(ERR_INVALID_NAMED_CAPTURE, t[: end + 1])
            if name in self.names:
                raise self.error(ERR_DUPLICATE_NAME, name)
            self.n_groups += 1
            self.names[name] = self.n_groups
            # Python names must be identifiers; Go's may start with a digit. Groups are
            # looked up by number through `names`, so Python's own name does not matter.
            self.push(f"(?P<g{self.n_groups}>")
            self.i += end + 1
            return
        flags = _Flags(**vars(self.flags))
        j = i + 2
        sign = 1
        saw_flag = False
        while j < len(src):
            c = src[j]
            j += 1
            if c in "imsU":
                value = sign > 0
                if c == "i":
                    flags.fold = value
                elif c == "m":
                    flags.multiline = value
                elif c == "s":
                    flags.dotnl = value
                else:
                    flags.ungreedy = value
                saw_flag = True
            elif c == "-":
                if sign < 0:
                    break
                sign = -1
                saw_flag = False
            elif c in ":)":
                if sign < 0 and not saw_flag:
                    break
                if c == ":":
                    self.push("(?:")
                    self.flags = flags
                else:
                    # (?flags): the rest of the current group runs with them.
                    self.flags = flags
                self.i = j
                return
            else:
                break
        raise self.error(ERR_INVALID_PERL_OP, src[i:j])

    def push(self, text: str) -> None:
        self.stack.append(_Group(_Flags(**vars(self.flags))))
        self.out.append(text)
        self.last = "op"

    def close_group(self) -> None:
        if not self.stack:
            raise self.error(ERR_UNEXPECTED_PAREN, self.src)
        group = self.stack.pop()
        self.flags = group.flags
        self.out.append(")")
        self.last = "atom"
        self.i += 1

    # -- escapes ---------------------------------------------------------------------------
    def escape(self) -> None:
        src, i = self.src, self.i
        if i + 1 >= len(src):
            raise self.error(ERR_TRAILING_BACKSLASH, "")
        d = src[i + 1]
        if d == "A":
            self.atom("(?:\\A)", 2)
        elif d == "z":
            self.atom("(?:\\Z)", 2)
        elif d == "b":
            self.atom(_WORD_BOUNDARY, 2)
        elif d == "B":
            self.atom(_NOT_WORD_BOUNDARY, 2)
        elif d == "Q":
            end = src.find("\\E", i + 2)
            literal = src[i + 2:] if end < 0 else src[i + 2:end]
            self.i = len(src) if end < 0 else end + 2
            for ch in literal:
                self.atom_text(self.fold(_char(ord(ch))), self.i)
        elif d in "pP":
            start = i
            ranges, self.i = self.unicode_class(i)
            self.atom_text(_class_text(ranges, False), start)
        elif d.lower() in _PERL:
            ranges = _PERL[d.lower()]
            self.atom(_class_text(ranges, d.isupper()), 2)
        else:
            cp, self.i = self.escape_char(i)
            self.atom_text(self.fold(_char(cp)), i)

    def escape_char(self, i: int) -> tuple[int, int]:
        """Go's parseEscape: the code point of the escape at src[i] ('\\') and where it ends."""
        src = self.src
        if i + 1 >= len(src):
            raise self.error(ERR_TRAILING_BACKSLASH, "")
        c = src[i + 1]
        j = i + 2
        if "1" <= c <= "7" and not (j < len(src) and "0" <= src[j] <= "7"):
            raise self.error(ERR_INVALID_ESCAPE, src[i:j])  # \1: a backreference, which Go lacks
        if "0" <= c <= "7":
            value = ord(c) - 48
            for _ in range(2):
                if j < len(src) and "0" <= src[j] <= "7":
                    value = value * 8 + ord(src[j]) - 48
                    j += 1
            return value, j
        if c == "x":
            if j < len(src) and src[j] == "{":
                end = src.find("}", j)
                digits = src[j + 1:end] if end > 0 else ""
                if end < 0 or not digits or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                    raise self.error(ERR_INVALID_ESCAPE, src[i:(end + 1) if end > 0 else len(src)])
                value = int(digits, 16)
                if value > MAX_RUNE:
                    raise self.error(ERR_INVALID_ESCAPE, src[i:end + 1])
                return value, end + 1
            digits = src[j:j + 2]
            if len(digits) < 2 or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                raise self.error(ERR_INVALID_ESCAPE, src[i:j + len(digits)])
            return int(digits, 16), j + 2
        simple = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
        if c in simple:
            return simple[c], j
        if ord(c) < 0x80 and not c.isalnum():
            return ord(c), j  # escaped punctuation is itself
        raise self.error(ERR_INVALID_ESCAPE, src[i:j])

    def unicode_class(self, i: int) -> tuple[Ranges, int]:
        """`\\pL`, `\\p{Greek}`, `\\p{^L}`, `\\PL` at src[i]: (ranges, end)."""
        src = self.src
        negated = src[i + 1] == "P"
        j = i + 2
        if j >= len(src):
            raise self.error(ERR_INVALID_CHAR_RANGE, src[i:])
        if src[j] == "{":
            end = src.find("}", j)
            if end < 0:
                raise self.error(ERR_INVALID_CHAR_RANGE, src[i:])
            name, j = src[j + 1:end], end + 1
        else:
            name, j = src[j], j + 1
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        if name == "Any":
            ranges: Ranges = [(0, MAX_RUNE)]
        elif name in _CATEGORY_NAMES:
            ranges = list(_unicode_category(name))
        elif name in _GO_SCRIPTS:
            raise self.error(UNSUPPORTED, src[i:j])
        else:
            raise self.error(ERR_INVALID_CHAR_RANGE, src[i:j])
        return (_negate(ranges) if negated else ranges), j

    # -- classes ---------------------------------------------------------------------------
    def parse_class(self) -> tuple[Ranges, bool]:
        src = self.src
        start = self.i
        whole = src[start:]
        t = start + 1
        negated = t < len(src) and src[t] == "^"
        if negated:
            t += 1
        ranges: Ranges = []
        first = True
        while t >= len(src) or src[t] != "]" or first:
            if t >= len(src):
                raise self.error(ERR_MISSING_BRACKET, whole)
            first = False
            if src.startswith("[:", t):
                end = src.find(":]", t + 2)
                if end >= 0:
                    name = src[t + 2:end]
                    posix_negated = name.startswith("^")
                    group = _POSIX.get(name.lstrip("^")) if name.count("^") <= 1 else None
                    if group is None:
                        raise self.error(ERR_INVALID_CHAR_RANGE, src[t:end + 2])
                    ranges += _negate(group) if posix_negated else group
                    t = end + 2
                    continue
            if src[t] == "\\" and t + 1 < len(src) and src[t + 1] in "pP":
                rs, t = self.unicode_class(t)
                ranges += rs
                continue
            if src[t] == "\\" and t + 1 < len(src) and src[t + 1].lower() in _PERL:
                group = _PERL[src[t + 1].lower()]
                ranges += _negate(group) if src[t + 1].isupper() else group
                t += 2
                continue
            range_start = t
            lo, t = self.class_char(t, whole)
            hi = lo
            if t + 1 < len(src) and src[t] == "-" and src[t + 1] != "]":
                hi, t = self.class_char(t + 1, whole)
                if hi < lo:
                    raise self.error(ERR_INVALID_CHAR_RANGE, src[range_start:t])
            ranges.append((lo, hi))
        self.i = t + 1
        return ranges, negated

    def class_char(self, t: int, whole: str) -> tuple[int, int]:
        src = self.src
        if t >= len(src):
            raise self.error(ERR_MISSING_BRACKET, whole)
        if src[t] == "\\":
            return self.escape_char(t)
        return ord(src[t]), t + 1


# --- compiled patterns ------------------------------------------------------------------------


def translate(pattern: str) -> _Parsed:
    """Parse a Go pattern (GoRegexError as Go would refuse it) into its Python equivalent."""
    return _Parser(pattern).parse()


class GoRegex:
    """A compiled Go regexp: Go's matching and iteration rules over a Python pattern."""

    def __init__(self, pattern: str):
        parsed = translate(pattern)
        self.pattern = pattern
        self.python = parsed.python
        self.names = parsed.names
        try:
            self.rx = re.compile(parsed.python)
        except re.error as exc:  # a translation bug, or Python's own limits
            raise GoRegexError(UNSUPPORTED, f"{pattern} ({exc})", pattern) from None

    @property
    def groups(self) -> int:
        return self.rx.groups

    def match(self, s: str) -> bool:
        """Go's MatchString: a match anywhere."""
        return self.rx.search(s) is not None

    def find(self, s: str) -> re.Match[str] | None:
        return self.rx.search(s)

    def find_all(self, s: str, n: int = -1) -> list[re.Match[str]]:
        """Go's FindAll (n < 0: all): an empty match right after a match is not one."""
        out: list[re.Match[str]] = []
        pos, prev_end = 0, -1
        while (n < 0 or len(out) < n) and pos <= len(s):
            m = self.rx.search(s, pos)
            if m is None:
                break
            accept = True
            if m.end() == pos:
                if m.start() == prev_end:
                    accept = False
                pos += 1
            else:
                pos = m.end()
            prev_end = m.end()
            if accept:
                out.append(m)
        return out

    def replace_all(self, s: str, repl: Callable[[re.Match[str]], str]) -> str:
        """Go's replaceAll: no replacement for an empty match right after another match."""
        out: list[str] = []
        last_end = search = 0
        while search <= len(s):
            m = self.rx.search(s, search)
            if m is None:
                break
            start, end = m.span()
            out.append(s[last_end:start])
            if end > last_end or start == 0:
                out.append(repl(m))
            last_end = end
            search = search + 1 if search + 1 > end else end
        out.append(s[last_end:])
        return "".join(out)

    def replace_all_string(self, s: str, template: str) -> str:
        """Go's ReplaceAllString: `$1`, `${name}` expanded."""
        return self.replace_all(s, lambda m: self.expand(template, m))

    def split(self, s: str, n: int = -1) -> list[str]:
        """Go's Split."""
        if n == 0:
            return []
        if self.pattern and s == "":
            return [""]
        parts: list[str] = []
        beg = end = 0
        for m in self.find_all(s, n):
            if n > 0 and len(parts) == n - 1:
                break
            end = m.start()
            if m.end() != 0:
                parts.append(s[beg:end])
            beg = m.end()
        if end != len(s):
            parts.append(s[beg:])
        return parts

    def group(self, m: re.Match[str], name: str) -> str:
        """A group by Go name or number; "" when it does not exist or did not take part."""
        index = int(name) if name.isdigit() else self.names.get(name)
        if index is None or index > self.rx.groups:
            return ""
        return m.group(index) or ""

    def expand(self, template: str, m: re.Match[str]) -> str:
        """Go's Regexp.Expand: $1, ${1}, $name, ${name}; $$ is a literal $."""
        out: list[str] = []
        i, n = 0, len(template)
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
                if k < 0 or not name or not all(ch == "_" or ch.isalnum() for ch in name):
                    out.append(c)
                    i += 1
                    continue
                i = k + 1
            else:
                j = i + 1
                while j < n and (template[j] == "_" or template[j].isalnum()):
                    j += 1
                if j == i + 1:
                    out.append(c)
                    i += 1
                    continue
                name, i = template[i + 1:j], j
            out.append(self.group(m, name))
        return "".join(out)


_cache_lock = threading.Lock()
_cache: dict[str, GoRegex | GoRegexError] = {}


def compile(pattern: str) -> GoRegex:  # noqa: A001 - named as Go's regexp.Compile
    """The compiled pattern (cached; a refused pattern raises its GoRegexError each time)."""
    with _cache_lock:
        hit = _cache.get(pattern)
    if hit is None:
        try:
            hit = GoRegex(pattern)
        except GoRegexError as exc:
            hit = exc
        with _cache_lock:
            if len(_cache) > 4096:
                _cache.clear()
            _cache[pattern] = hit
    if isinstance(hit, GoRegexError):
        raise hit
    return hit


def quote_meta(s: str) -> str:
    """Go's regexp.QuoteMeta."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in s)
