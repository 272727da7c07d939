"""JSON Schema -> GBNF grammar, for `response_format: {"type": "json_schema", ...}` (structured output).

LocalAI compiles the schema into a grammar (its functions grammar generator); so do we, in
pure Python. The subset is what OpenAI's structured outputs accept and what grammars can
express: type (or a list of types), properties/required, additionalProperties, items,
prefixItems, minItems/maxItems, minLength/maxLength, enum, const, anyOf/oneOf, allOf of
objects, $ref into $defs/definitions (recursion included), nullable, integer bounds
(minimum/maximum, exclusive ones too, as llama.cpp's C++ converter bounds them), string
formats date, time, date-time and uuid (as llama.cpp's converters write them), and a
string `pattern` in the regex subset llama.cpp's converters take (literals, classes,
groups, alternation, quantifiers; the produced characters are JSON-escaped). Keywords a
grammar cannot enforce (a pattern with lookaround, number bounds, multipleOf, ...) are
reported back as `ignored` so the caller can say so; the output is then valid JSON of
the right shape.

String lengths count code points as llama.cpp's grammar decodes the model's bytes; a model
that emits broken UTF-8 through byte tokens can show more characters than maxLength once the
text turns each broken byte into U+FFFD.

Objects keep the schema's property order (as OpenAI's strict mode does): required
properties first, each optional one may be left out, and no key outside `properties` is
produced unless `additionalProperties` asks for them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Grammars are only there to keep a model on track: bound what a model could otherwise
# repeat forever (whitespace, digits) so a constrained answer always ends.
_PRIMITIVES = {
    "ws": r'| " " | "\n" [ \t]{0,20}',
    # Not surrogates or past U+10FFFF: llama.cpp decodes a broken byte sequence from byte
    # tokens as one such code point, which then reads as several U+FFFD.
    "char": r'[^"\\\x7F\x00-\x1F\uD800-\uDFFF\U00110000-\U001FFFFF] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )',
    "string": r'"\"" char* "\"" ws',
    "integer": r'"-"? ( "0" | [1-9] [0-9]{0,15} ) ws',
    "number": r'"-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )? ws',
    "boolean": r'( "true" | "false" ) ws',
    "null": r'"null" ws',
    "value": r"object | array | string | number | boolean | null",
    "object": r'"{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}" ws',
    "array": r'"[" ws ( value ( "," ws value )* )? "]" ws',
}
# Which primitives each one needs, so the grammar lists only what it uses.
_NEEDS = {
    "string": ("char", "ws"), "integer": ("ws",), "number": ("ws",), "boolean": ("ws",),
    "null": ("ws",), "value": ("object", "array", "string", "number", "boolean", "null"),
    "object": ("ws", "string", "value"), "array": ("ws", "value"),
}
_HANDLED = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
    "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
    "$defs", "definitions", "nullable",
    # Annotations: nothing to enforce.
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "strict",
    "deprecated", "readOnly", "writeOnly",
    # Enforced where they apply (integers, strings); reported by the visitors otherwise.
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format", "pattern",
}
_MAX_RULES = 2000
# Deeper schemas are refused: each level is a Python call (and a client could send 100k).
MAX_DEPTH = 64
# The integer primitive's digits: a bounded range never needs more.
_MAX_DIGITS = 16
_FORMATS = {
    "date": r'[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )',
    "time": r'( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? '
            r'( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )',
    "uuid": r'[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}',
}
_FORMATS["date-time"] = _FORMATS["date"] + ' "T" ' + _FORMATS["time"]


class SchemaGrammarError(ValueError):
    """A schema that cannot be turned into a grammar; the message names the place in it."""


@dataclass
class SchemaGrammar:
    gbnf: str
    # "path: keyword" for every keyword the grammar could not enforce.
    ignored: list[str] = field(default_factory=list)


def schema_to_gbnf(schema: Any) -> SchemaGrammar:
    builder = GrammarBuilder()
    builder.set_root(builder.value(schema, "#"))
    return builder.grammar()


class GrammarBuilder:
    """Several schemas in one grammar, under a root the caller writes (tool-call grammars
    wrap function schemas in their own syntax)."""

    def __init__(self) -> None:
        self._conv = _Converter(None)

    def value(self, schema: Any, path: str = "#") -> str:
        """A GBNF expression for one JSON value of `schema` ($refs resolve inside it)."""
        self._conv.root = schema
        self._conv.refs = {}
        return self._conv.visit(schema, path)

    def rule(self, hint: str, body: str) -> str:
        return self._conv._rule(hint, body)

    def primitive(self, name: str) -> str:
        return self._conv._primitive(name)

    def set_root(self, body: str) -> None:
        self._conv.rules["root"] = body

    def grammar(self) -> SchemaGrammar:
        return SchemaGrammar(self._conv.render(), list(dict.fromkeys(self._conv.ignored)))


def _literal(text: str) -> str:
    """A GBNF string literal matching `text` exactly."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _json_literal(value: Any) -> str:
    return _literal(json.dumps(value, ensure_ascii=False, separators=(",", ":"))) + " ws"


def _repeat(item: str, lo: int, hi: int | None) -> str:
    """`item` lo..hi times (hi None: unbounded), in GBNF."""
    if hi is None:
        return f"{item}{{{lo},}}" if lo else f"{item}*"
    if lo == hi == 1:
        return item
    return f"{item}{{{lo},{hi}}}"


class _Converter:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.rules: dict[str, str] = {}
        self.used: set[str] = set()
        self.refs: dict[str, str] = {}
        self.ignored: list[str] = []

    # -- rules ---------------------------------------------------------------------------
    def _primitive(self, name: str) -> str:
        todo = [name]
        while todo:
            n = todo.pop()
            if n not in self.used:
                self.used.add(n)
                todo.extend(_NEEDS.get(n, ()))
        return name

    def _rule(self, hint: str, body: str) -> str:
        if len(self.rules) >= _MAX_RULES:
            raise SchemaGrammarError(f"the schema is too large for a grammar (over {_MAX_RULES} rules)")
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", hint).strip("-").lower() or "r"
        name, i = base, 1
        while name in self.rules or name in _PRIMITIVES or name == "root":
            i += 1
            name = f"{base}-{i}"
        self.rules[name] = body
        return name

    def render(self) -> str:
        lines = [f"root ::= {self.rules['root']}"]
        lines += [f"{n} ::= {b}" for n, b in self.rules.items() if n != "root"]
        lines += [f"{n} ::= {_PRIMITIVES[n]}" for n in _PRIMITIVES if n in self.used]
        return "\n".join(lines) + "\n"

    # -- schema --------------------------------------------------------------------------
    def visit(self, schema: Any, path: str) -> str:
        """A GBNF expression for `schema` (each JSON value ends with its trailing `ws`)."""
        if path.count("/") > MAX_DEPTH * 2:
            raise SchemaGrammarError(f"{path[:120]}...: the schema nests deeper than {MAX_DEPTH} levels")
        if schema is True or schema == {}:
            return self._primitive("value")
        if schema is False:
            raise SchemaGrammarError(f"{path}: the schema `false` admits no value")
        if not isinstance(schema, dict):
            raise SchemaGrammarError(f"{path}: a schema must be an object, got {json.dumps(schema)[:60]}")
        for key in schema:
            if key not in _HANDLED:
                self.ignored.append(f"{path}: {key}")

        if "$ref" in schema:
            return self._ref(schema["$ref"], path)
        if "const" in schema:
            return _json_literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaGrammarError(f"{path}: enum must be a non-empty list")
            return "( " + " | ".join(_json_literal(v) for v in values) + " )"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = schema[key]
                if not isinstance(options, list) or not options:
                    raise SchemaGrammarError(f"{path}: {key} must be a non-empty list")
                rest = {k: v for k, v in schema.items() if k != key}
                alts = [self.visit({**rest, **o} if isinstance(o, dict) else o, f"{path}/{key}/{i}")
                        for i, o in enumerate(options)]
                return "( " + " | ".join(alts) + " )"
        if "allOf" in schema:
            return self.visit(self._merge_all_of(schema, path), path)

        kind = schema.get("type")
        if schema.get("nullable") is True and isinstance(kind, str):
            kind = [kind, "null"]
        if isinstance(kind, list):
            if not kind:
                raise SchemaGrammarError(f"{path}: type must not be an empty list")
            rest = {k: v for k, v in schema.items() if k not in ("type", "nullable")}
            alts = [self.visit({**rest, "type": t}, path) for t in kind]
            return alts[0] if len(alts) == 1 else "( " + " | ".join(alts) + " )"
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                return self._primitive("value")
        if kind == "object":
            return self._object(schema, path)
        if kind == "array":
            return self._array(schema, path)
        if kind == "string":
            return self._string(schema, path)
        if kind == "integer":
            return self._integer(schema, path)
        if kind == "number":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if key in schema:
                    self.ignored.append(f"{path}: {key}")
            return self._primitive("number")
        if kind in ("boolean", "null"):
            return self._primitive(kind)
        raise SchemaGrammarError(f"{path}: unknown type {kind!r}")

    def _ref(self, ref: Any, path: str) -> str:
        if ref in self.refs:
            return self.refs[ref]
        target = self._resolve(ref, path)
        # Name the rule before visiting it, so a recursive schema refers to itself.
        name = self._rule("ref-" + ref.rsplit("/", 1)[-1], "")
        self.refs[ref] = name
        self.rules[name] = self.visit(target, ref)
        return name

    def _merge_all_of(self, schema: dict, path: str) -> dict:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        parts = schema["allOf"]
        if not isinstance(parts, list):
            raise SchemaGrammarError(f"{path}: allOf must be a list")
        for i, part in enumerate(parts):
            while isinstance(part, dict) and "$ref" in part:
                part = self._resolve(part["$ref"], f"{path}/allOf/{i}")
            if not isinstance(part, dict):
                raise SchemaGrammarError(f"{path}/allOf/{i}: a schema must be an object")
            for k, v in part.items():
                if k == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **v}
                elif k == "required":
                    merged["required"] = list(merged.get("required", [])) + [r for r in v if r not in merged.get("required", [])]
                else:
                    merged.setdefault(k, v)
        return merged

    def _resolve(self, ref: Any, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaGrammarError(f"{path}: only local $ref (#/$defs/...) are supported, got {ref!r}")
        target: Any = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise SchemaGrammarError(f"{path}: $ref {ref!r} points at nothing in the schema")
            target = target[part]
        return target

    def _object(self, schema: dict, path: str) -> str:
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise SchemaGrammarError(f"{path}: properties must be an object")
        required = schema.get("required") or []
        if not isinstance(required, list):
            raise SchemaGrammarError(f"{path}: required must be a list of property names")
        missing = [r for r in required if r not in props]
        if missing and not schema.get("additionalProperties"):
            raise SchemaGrammarError(f"{path}: required names {missing[0]!r}, which is not in properties")
        extra = schema.get("additionalProperties")
        if not props:
            if extra is False:
                return '"{" ws "}" ws'
            value = self._primitive("value") if extra in (None, True) else self.visit(extra, f"{path}/additionalProperties")
            pair = self._rule(f"{path}-kv", f'{self._primitive("string")} ":" ws {value}')
            return f'"{{" ws ( {pair} ( "," ws {pair} )* )? "}}" ws'
        kv = {}
        for name, sub in props.items():
            value = self.visit(sub, f"{path}/properties/{name}")
            kv[name] = self._rule(f"{path}-{name}-kv", f'{_literal(json.dumps(name, ensure_ascii=False))} ws ":" ws {value}')
        req = [n for n in props if n in required]
        opt = [n for n in props if n not in required]
        if extra not in (None, False):
            self.ignored.append(f"{path}: additionalProperties (no keys beyond properties are produced)")
        if req:
            parts = [kv[req[0]]] + [f'"," ws {kv[n]}' for n in req[1:]] + [f'( "," ws {kv[n]} )?' for n in opt]
            return '"{" ws ' + " ".join(parts) + ' "}" ws'
        # Only optional properties: the first one present decides where the commas go.
        alts = []
        for i, first in enumerate(opt):
            alts.append(" ".join([kv[first]] + [f'( "," ws {kv[n]} )?' for n in opt[i + 1:]]))
        body = self._rule(f"{path}-props", " | ".join(alts))
        return f'"{{" ws {body}? "}}" ws'

    def _array(self, schema: dict, path: str) -> str:
        lo = schema.get("minItems", 0)
        hi = schema.get("maxItems")
        if not isinstance(lo, int) or lo < 0 or (hi is not None and (not isinstance(hi, int) or hi < lo)):
            raise SchemaGrammarError(f"{path}: minItems/maxItems must be integers with 0 <= minItems <= maxItems")
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and prefix:
            items = [self.visit(s, f"{path}/prefixItems/{i}") for i, s in enumerate(prefix)]
            return '"[" ws ' + ' "," ws '.join(items) + ' "]" ws'
        items = schema.get("items", True)
        item = self.visit(items, f"{path}/items")
        if not item.isidentifier() and not re.fullmatch(r"[a-z0-9-]+", item):
            item = self._rule(f"{path}-item", item)
        if hi == 0:
            return '"[" ws "]" ws'
        more = _repeat(f'( "," ws {item} )', max(lo - 1, 0), None if hi is None else hi - 1)
        inner = f"{item} {more}"
        return f'"[" ws {inner} "]" ws' if lo >= 1 else f'"[" ws ( {inner} )? "]" ws'

    def _integer(self, schema: dict, path: str) -> str:
        lo, hi = _bound(schema, "minimum", "exclusiveMinimum", True, path), _bound(schema, "maximum", "exclusiveMaximum", False, path)
        if lo is None and hi is None:
            return self._primitive("integer")
        if lo is not None and hi is not None and lo > hi:
            raise SchemaGrammarError(f"{path}: no integer lies between minimum {lo} and maximum {hi}")
        limit = 10 ** _MAX_DIGITS - 1
        if (lo is not None and abs(lo) > limit) or (hi is not None and abs(hi) > limit):
            self.ignored.append(f"{path}: minimum/maximum beyond {_MAX_DIGITS} digits")
            return self._primitive("integer")
        self._primitive("ws")
        return self._rule(f"{path}-int", "( " + _int_range(lo, hi) + " ) ws")

    def _string(self, schema: dict, path: str) -> str:
        lo = schema.get("minLength", 0)
        hi = schema.get("maxLength")
        fmt, pattern = schema.get("format"), schema.get("pattern")
        if pattern is not None:
            try:
                body = _PatternConverter(pattern).convert()
            except _PatternError as exc:
                self.ignored.append(f"{path}: pattern ({exc})")
            else:
                if lo or hi is not None:
                    self.ignored.append(f"{path}: minLength/maxLength (the pattern decides the length)")
                if fmt is not None:
                    self.ignored.append(f"{path}: format (the pattern decides the text)")
                self._primitive("ws")
                return self._rule(f"{path}-pattern", f'"\\"" {body} "\\"" ws')
        if fmt is not None:
            if fmt in _FORMATS:
                self._primitive("ws")
                return self._rule(f"{path}-{fmt}", f'"\\"" {_FORMATS[fmt]} "\\"" ws')
            self.ignored.append(f"{path}: format {fmt!r}")
        if lo == 0 and hi is None:
            return self._primitive("string")
        if not isinstance(lo, int) or lo < 0 or (hi is not None and (not isinstance(hi, int) or hi < lo)):
            raise SchemaGrammarError(f"{path}: minLength/maxLength must be integers with 0 <= minLength <= maxLength")
        self._primitive("char")
        self._primitive("ws")
        return f'"\\"" {_repeat("char", lo, hi)} "\\"" ws'


# -- integer ranges -----------------------------------------------------------------------------


def _bound(schema: dict, inclusive: str, exclusive: str, lower: bool, path: str) -> int | None:
    """The tightest integer bound the schema gives (draft 4 boolean exclusives included)."""
    import math

    out = None
    for key in (inclusive, exclusive):
        v = schema.get(key)
        if v is None or isinstance(v, bool):
            continue
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SchemaGrammarError(f"{path}: {key} must be a number")
        strict = key == exclusive or schema.get(exclusive) is True
        if lower:
            b = math.floor(v) + 1 if strict else math.ceil(v)
            out = b if out is None else max(out, b)
        else:
            b = math.ceil(v) - 1 if strict else math.floor(v)
            out = b if out is None else min(out, b)
    return out


def _same_length(x: str, y: str) -> str:
    """GBNF for the digit strings of one length from x to y (x <= y, equal lengths)."""
    if x == y:
        return _literal(x)
    i = 0
    while x[i] == y[i]:
        i += 1
    head = _literal(x[:i]) + " " if i else ""
    x, y = x[i:], y[i:]
    n = len(x)
    if n == 1:
        return f"{head}[{x}-{y}]"
    rest = n - 1
    if set(x[1:]) == {"0"} and set(y[1:]) == {"9"}:
        return f"{head}[{x[0]}-{y[0]}] [0-9]{{{rest}}}"
    alts = [f"{_literal(x[0])} {_at_least(x[1:])}"]
    a, b = int(x[0]) + 1, int(y[0]) - 1
    if a <= b:
        alts.append(f"{_literal(str(a)) if a == b else f'[{a}-{b}]'} [0-9]{{{rest}}}")
    alts.append(f"{_literal(y[0])} {_at_most(y[1:])}")
    return f"{head}( " + " | ".join(alts) + " )"


def _at_least(s: str) -> str:
    return f"[0-9]{{{len(s)}}}" if set(s) == {"0"} else _same_length(s, "9" * len(s))


def _at_most(s: str) -> str:
    return f"[0-9]{{{len(s)}}}" if set(s) == {"9"} else _same_length("0" * len(s), s)


def _non_negative(lo: int, hi: int | None) -> list[str]:
    alts = []
    if lo == 0:
        alts.append('"0"')
        lo = 1
    top = len(str(hi)) if hi is not None else _MAX_DIGITS
    for width in range(len(str(lo)), top + 1):
        a = max(lo, 10 ** (width - 1))
        b = 10 ** width - 1 if hi is None else min(hi, 10 ** width - 1)
        if a <= b:
            alts.append(_same_length(str(a), str(b)))
    return alts


def _int_range(lo: int | None, hi: int | None) -> str:
    """GBNF for the integers in [lo, hi] (None: unbounded, up to the primitive's digits)."""
    alts = []
    if lo is None or lo < 0:
        mag_lo = 1 if hi is None or hi >= 0 else -hi
        mag_hi = None if lo is None else -lo
        if mag_hi is None or mag_lo <= mag_hi:
            alts += [f'"-" ( {a} )' for a in _non_negative(mag_lo, mag_hi)]
    if hi is None or hi >= 0:
        alts += _non_negative(0 if lo is None else max(lo, 0), hi)
    return " | ".join(alts)


# -- string patterns ----------------------------------------------------------------------------


class _PatternError(ValueError):
    pass


# What a JSON string may hold as a bare character: not ", \ or a control character.
_PLAIN_EXCLUDED = '"\\\x00-\x1F\x7F'


class _PatternConverter:
    """An ECMAScript regex (JSON Schema's `pattern`) as GBNF for the JSON text of a string that
    matches it whole: literals, classes, groups, alternation and quantifiers. Characters a
    JSON string must escape are produced escaped (newline as \\n, quote as \\\")."""

    def __init__(self, pattern: Any):
        if not isinstance(pattern, str):
            raise _PatternError("not a string")
        # A string that matches the whole pattern also matches it anywhere.
        if pattern.startswith("^"):
            pattern = pattern[1:]
        if pattern.endswith("$") and not pattern.endswith("\\$"):
            pattern = pattern[:-1]
        self.p = pattern
        self.i = 0

    def convert(self) -> str:
        out = self.alternation()
        if self.i < len(self.p):
            raise _PatternError(f"unexpected {self.p[self.i]!r} at {self.i}")
        return out or '""'

    def alternation(self) -> str:
        branches = [self.sequence()]
        while self.i < len(self.p) and self.p[self.i] == "|":
            self.i += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else "( " + " | ".join(b or '""' for b in branches) + " )"

    def sequence(self) -> str:
        items = []
        while self.i < len(self.p) and self.p[self.i] not in "|)":
            atom = self.atom()
            items.append(self.quantified(atom))
        return " ".join(i for i in items if i)

    def quantified(self, atom: str) -> str:
        p = self.p
        if self.i >= len(p):
            return atom
        c = p[self.i]
        q = None
        if c in "*+?":
            q = {"*": "*", "+": "+", "?": "?"}[c]
            self.i += 1
        elif c == "{":
            m = re.match(r"\{(\d+)(,(\d*))?\}", p[self.i:])
            if m:
                lo, comma, hi = m.group(1), m.group(2), m.group(3)
                q = f"{{{lo}}}" if comma is None else f"{{{lo},{hi}}}"
                self.i += m.end()
        if q is None:
            return atom
        if self.i < len(p) and p[self.i] in "?+":
            self.i += 1  # lazy or possessive: the same set of strings
        return f"( {atom} ){q}"

    def atom(self) -> str:
        p = self.p
        c = p[self.i]
        if c == "(":
            self.i += 1
            if p.startswith("?:", self.i):
                self.i += 2
            elif p.startswith("?", self.i):
                raise _PatternError(f"{p[self.i - 1:self.i + 2]!r} (lookaround and named groups) is not supported")
            inner = self.alternation()
            if self.i >= len(p) or p[self.i] != ")":
                raise _PatternError("missing )")
            self.i += 1
            return f"( {inner} )"
        if c == "[":
            return self.char_class()
        if c == ".":
            self.i += 1
            return f"[^{_PLAIN_EXCLUDED}\\n]"
        if c == "\\":
            return self.escape()
        if c in "^$":
            raise _PatternError(f"an anchor {c!r} inside the pattern is not supported")
        if c in "*+?{":
            raise _PatternError(f"nothing to repeat at {self.i}")
        self.i += 1
        return _json_char(c)

    def escape(self) -> str:
        p = self.p
        if self.i + 1 >= len(p):
            raise _PatternError("trailing backslash")
        d = p[self.i + 1]
        self.i += 2
        classes = {"d": "[0-9]", "D": f"[^0-9{_PLAIN_EXCLUDED}]", "w": "[0-9A-Za-z_]",
                   "W": f"[^0-9A-Za-z_{_PLAIN_EXCLUDED}]", "s": '" "', "S": f"[^ {_PLAIN_EXCLUDED}]"}
        if d in classes:
            return classes[d]
        if d in "bBkp" or d.isdigit() and d != "0":
            raise _PatternError(f"\\{d} is not supported")
        simple = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\x00"}
        return _json_char(simple.get(d, d))

    def char_class(self) -> str:
        p = self.p
        self.i += 1
        negated = p.startswith("^", self.i)
        if negated:
            self.i += 1
        parts: list[str] = []
        first = True
        while self.i < len(p) and (p[self.i] != "]" or first):
            first = False
            c = p[self.i]
            if c == "\\":
                if self.i + 1 >= len(p):
                    raise _PatternError("trailing backslash")
                d = p[self.i + 1]
                self.i += 2
                named = {"d": "0-9", "w": "0-9A-Za-z_", "s": " "}
                if d in named:
                    parts.append(named[d])
                    continue
                if d in "DWS":
                    raise _PatternError(f"\\{d} inside a class is not supported")
                c = {"n": "\n", "t": "\t", "r": "\r"}.get(d, d)
            else:
                self.i += 1
            if self.i + 1 < len(p) and p[self.i] == "-" and p[self.i + 1] != "]":
                hi = p[self.i + 1]
                self.i += 2
                if hi == "\\":
                    hi = p[self.i]
                    self.i += 1
                parts.append(f"{_class_char(c)}-{_class_char(hi)}")
            else:
                parts.append(_class_char(c))
        if self.i >= len(p):
            raise _PatternError("missing ]")
        self.i += 1
        body = "".join(parts)
        if negated:
            return f"[^{body}{_PLAIN_EXCLUDED}]"
        # A class member a JSON string must escape is produced escaped instead.
        escaped = [ch for ch, rep in (('"', '"\\\\\\""'), ("\\", '"\\\\\\\\"')) if _class_char(ch) in parts]
        plain = [x for x in parts if x not in (_class_char('"'), _class_char("\\"))]
        alts = ([f"[{''.join(plain)}]"] if plain else []) + [_json_char(ch) for ch in escaped]
        return alts[0] if len(alts) == 1 else "( " + " | ".join(alts) + " )"


def _class_char(c: str) -> str:
    if c in "]^-\\":
        return "\\" + c
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"\\x{ord(c):02X}"
    return c


def _json_char(c: str) -> str:
    """GBNF for one character as it appears inside a JSON string."""
    return _literal(json.dumps(c, ensure_ascii=False)[1:-1])
