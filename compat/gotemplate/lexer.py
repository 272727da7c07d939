"""Tokenizer for Go text/template source: text, actions, trim markers, literals, Go's lex errors."""

from __future__ import annotations

from dataclasses import dataclass

# Token kinds. Keywords keep their own kind so the parser can switch on them.
EOF = "EOF"
ERROR = "error"
TEXT = "text"
COMMENT = "comment"
LEFT_DELIM = "{{"
RIGHT_DELIM = "}}"
SPACE = "space"
IDENT = "identifier"
FIELD = "field"
VARIABLE = "variable"
STRING = "string"
RAW_STRING = "raw string"
CHAR_CONST = "char constant"
NUMBER = "number"
BOOL = "bool"
NIL = "nil"
DOT = "."
PIPE = "|"
LPAREN = "("
RPAREN = ")"
DECLARE = ":="
ASSIGN = "="
CHAR = "char"  # a lone ',' (only meaningful in range declarations)

KEYWORDS = {
    "block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with",
}

SPACE_CHARS = " \t\r\n"
TRIM_MARKER_LEN = 2  # "- " after a left delimiter, " -" before a right one


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    val: str
    pos: int   # byte offset in the source (Go reports byte columns)
    line: int

    def describe(self) -> str:
        """How Go's item.String() shows this token in "unexpected X" messages."""
        if self.kind == EOF:
            return "EOF"
        if self.kind == ERROR:
            return self.val
        if self.kind in KEYWORDS_KIND or self.kind == DOT or self.kind == NIL:
            return "<" + self.val + ">"
        if len(self.val.encode()) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


KEYWORDS_KIND = {"kw:" + k for k in KEYWORDS}


def go_quote(s: str) -> str:
    """strconv.Quote: double-quoted with Go escapes."""
    from .gofmt import quote
    return quote(s)


class LexError(Exception):
    def __init__(self, msg: str, line: int):
        super().__init__(msg)
        self.msg = msg
        self.line = line


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdigit()


class Lexer:
    """Scans the whole source eagerly into a token list (the parser looks ahead 3 tokens)."""

    LD = "{{"
    RD = "}}"

    def __init__(self, src: str):
        self.src = src
        self._ascii = src.isascii()
        self.tokens: list[Token] = []
        self.line = 1
        self.paren_depth = 0

    # Go positions are byte offsets; we work in str indices and convert when emitting.
    def _bpos(self, i: int) -> int:
        if self._ascii:
            return i
        return len(self.src[:i].encode())

    def tokenize(self) -> list[Token]:
        src = self.src
        n = len(src)
        i = 0
        while True:
            j = src.find(self.LD, i)
            if j < 0:
                if i < n:
                    self._emit(TEXT, src[i:], i)
                self._emit(EOF, "", n)
                return self.tokens
            # Left trim marker: "{{- " trims the preceding text's trailing spaces.
            trim = j + 3 < n and src[j + 2] == "-" and src[j + 3] in SPACE_CHARS
            text_end = j
            if trim:
                text_end = len(src[i:j].rstrip(SPACE_CHARS)) + i
            if text_end > i:
                self._emit(TEXT, src[i:text_end], i)
            self.line += src.count("\n", text_end, j)
            i = self._lex_action(j, trim)

    def _emit(self, kind: str, val: str, start: int) -> None:
        self.tokens.append(Token(kind, val, self._bpos(start), self.line))
        self.line += val.count("\n")

    def _err(self, msg: str):
        raise LexError(msg, self.line)

    def _at_right_delim(self, i: int) -> tuple[bool, bool]:
        """(at delimiter, with trim marker) at position i."""
        src = self.src
        if src.startswith(self.RD, i):
            return True, False
        if src.startswith(" -" + self.RD, i) or (
            i < len(src) and src[i] in SPACE_CHARS and src.startswith("-" + self.RD, i + 1)
        ):
            return True, True
        return False, False

    def _lex_action(self, j: int, trim: bool) -> int:
        """Lex one action starting at the left delimiter j; return index after it."""
        src = self.src
        n = len(src)
        i = j + 2 + (TRIM_MARKER_LEN if trim else 0)
        self.paren_depth = 0
        # Comments must touch the delimiter (after an optional trim marker); they produce no tokens.
        if src.startswith("/*", i):
            end = src.find("*/", i + 2)
            if end < 0:
                self._err("unclosed comment")
            end += 2
            at, rtrim = self._at_right_delim(end)
            if not at:
                self._err("comment ends before closing delimiter")
            self.line += src.count("\n", i, end)
            k = end + (TRIM_MARKER_LEN if rtrim else 0) + 2
            return self._after_right(k, rtrim)
        self._emit(LEFT_DELIM, self.LD, j)
        if trim:
            self.line += src.count("\n", j + 2, i)
        while True:
            at, rtrim = self._at_right_delim(i)
            if at:
                if self.paren_depth:
                    self._err("unclosed left paren")
                k = i + (TRIM_MARKER_LEN if rtrim else 0)
                self.line += src.count("\n", i, k)
                self._emit(RIGHT_DELIM, self.RD, k)
                return self._after_right(k + 2, rtrim)
            if i >= n:
                self._err("unclosed action")
            c = src[i]
            if c in SPACE_CHARS:
                k = i
                while k < n and src[k] in SPACE_CHARS:
                    k += 1
                # Leave the space of a " -}}" marker for the delimiter check.
                if src.startswith("-" + self.RD, k):
                    k -= 1
                if k > i:
                    self._emit(SPACE, src[i:k], i)
                    i = k
                else:
                    continue
            elif c == "=":
                self._emit(ASSIGN, "=", i)
                i += 1
            elif c == ":":
                if not src.startswith(":=", i):
                    self._err("expected :=")
                self._emit(DECLARE, ":=", i)
                i += 2
            elif c == "|":
                self._emit(PIPE, "|", i)
                i += 1
            elif c == '"':
                i = self._lex_quote(i)
            elif c == "`":
                end = src.find("`", i + 1)
                if end < 0:
                    self._err("unterminated raw quoted string")
                self._emit(RAW_STRING, src[i:end + 1], i)
                i = end + 1
            elif c == "$":
                i = self._lex_word(i, VARIABLE)
            elif c == "'":
                i = self._lex_char(i)
            elif c == ".":
                if i + 1 < n and src[i + 1] in "0123456789":
                    i = self._lex_number(i)
                elif self._at_terminator(i + 1):
                    self._emit(DOT, ".", i)
                    i += 1
                else:
                    i = self._lex_word(i, FIELD)
            elif c in "+-" or (c.isdigit() and c.isascii()):
                i = self._lex_number(i)
            elif _is_alnum(c):
                i = self._lex_word(i, IDENT)
            elif c == "(":
                self.paren_depth += 1
                self._emit(LPAREN, "(", i)
                i += 1
            elif c == ")":
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    self._err("unexpected right paren")
                self._emit(RPAREN, ")", i)
                i += 1
            elif c.isascii() and c.isprintable():
                self._emit(CHAR, c, i)
                i += 1
            else:
                self._err("unrecognized character in action: " + _fmt_U(c))

    def _after_right(self, k: int, rtrim: bool) -> int:
        if rtrim:
            src = self.src
            n = len(src)
            start = k
            while k < n and src[k] in SPACE_CHARS:
                k += 1
            self.line += src.count("\n", start, k)
        return k

    def _at_terminator(self, i: int) -> bool:
        src = self.src
        if i >= len(src):
            return True
        c = src[i]
        if c in SPACE_CHARS or c in ".,|:)(":
            return True
        return src.startswith(self.RD, i)

    def _lex_word(self, i: int, kind: str) -> int:
        src = self.src
        n = len(src)
        k = i + 1 if kind in (FIELD, VARIABLE) else i
        while k < n and _is_alnum(src[k]):
            k += 1
        if not self._at_terminator(k):
            self._err("bad character " + _fmt_U(src[k]))
        word = src[i:k]
        if kind == IDENT:
            if word in KEYWORDS and word != "nil":
                kind = "kw:" + word
            elif word == "nil":
                kind = NIL
            elif word in ("true", "false"):
                kind = BOOL
        self._emit(kind, word, i)
        return k

    def _lex_quote(self, i: int) -> int:
        src = self.src
        n = len(src)
        k = i + 1
        while True:
            if k >= n or src[k] == "\n":
                self._err("unterminated quoted string")
            c = src[k]
            if c == "\\":
                k += 2
                continue
            if c == '"':
                break
            k += 1
        self._emit(STRING, src[i:k + 1], i)
        return k + 1

    def _lex_char(self, i: int) -> int:
        src = self.src
        n = len(src)
        k = i + 1
        while True:
            if k >= n or src[k] == "\n":
                self._err("unterminated character constant")
            c = src[k]
            if c == "\\":
                k += 2
                continue
            if c == "'":
                break
            k += 1
        self._emit(CHAR_CONST, src[i:k + 1], i)
        return k + 1

    def _scan_number(self, k: int) -> tuple[int, bool]:
        """Go's scanNumber from k: (end, ok); not ok when an alphanumeric follows (end includes it)."""
        src = self.src
        n = len(src)
        if k < n and src[k] in "+-":
            k += 1
        digits = "0123456789_"
        if k < n and src[k] == "0":
            k += 1
            if k < n and src[k] in "xX":
                k += 1
                digits = "0123456789abcdefABCDEF_"
            elif k < n and src[k] in "oO":
                k += 1
                digits = "01234567_"
            elif k < n and src[k] in "bB":
                k += 1
                digits = "01_"
        while k < n and src[k] in digits:
            k += 1
        if k < n and src[k] == ".":
            k += 1
            while k < n and src[k] in digits:
                k += 1
        if len(digits) == 11 and k < n and src[k] in "eE":
            k += 1
            if k < n and src[k] in "+-":
                k += 1
            while k < n and src[k] in "0123456789_":
                k += 1
        if len(digits) == 23 and k < n and src[k] in "pP":
            k += 1
            if k < n and src[k] in "+-":
                k += 1
            while k < n and src[k] in "0123456789_":
                k += 1
        if k < n and src[k] == "i":
            k += 1
        if k < n and _is_alnum(src[k]):
            return k + 1, False
        return k, True

    def _lex_number(self, i: int) -> int:
        src = self.src
        k, ok = self._scan_number(i)
        if not ok:
            self._err(f'bad number syntax: "{src[i:k]}"')
        if k < len(src) and src[k] in "+-":
            # A sign right after a number starts the imaginary part of a complex constant.
            k2, ok = self._scan_number(k)
            if not ok or src[k2 - 1] != "i":
                self._err(f'bad number syntax: "{src[i:k2]}"')
            k = k2
        self._emit(NUMBER, src[i:k], i)
        return k


def _fmt_U(c: str) -> str:
    """Go's %#U: U+0041 'A'."""
    cp = ord(c)
    s = f"U+{cp:04X}"
    if c.isprintable():
        s += f" '{c}'"
    return s


def tokenize(src: str) -> list[Token]:
    """All tokens; a lex error becomes a final ERROR token so earlier parse errors win, as in Go."""
    lx = Lexer(src)
    try:
        return lx.tokenize()
    except LexError as e:
        lx.tokens.append(Token(ERROR, e.msg, len(src), e.line))
        return lx.tokens
