"""JSON Schema -> GBNF grammar, for `response_format: {"type": "json_schema", ...}` (structured output).

LocalAI compiles the schema into a grammar (its functions grammar generator); so do we, in
pure Python. The subset is what OpenAI's structured outputs accept and what grammars can
express: type (or a list of types), properties/required, additionalProperties, items,
prefixItems, minItems/maxItems, minLength/maxLength, enum, const, anyOf/oneOf, allOf of
objects, $ref into $defs/definitions (recursion included), nullable. Keywords a grammar
cannot enforce (pattern, format, minimum, multipleOf, ...) are reported back as
`ignored` so the caller can say so; the output is then valid JSON of the right shape.

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
}
_MAX_RULES = 2000


class SchemaGrammarError(ValueError):
    """A schema that cannot be turned into a grammar; the message names the place in it."""


@dataclass
class SchemaGrammar:
    gbnf: str
    # "path: keyword" for every keyword the grammar could not enforce.
    ignored: list[str] = field(default_factory=list)


def schema_to_gbnf(schema: Any) -> SchemaGrammar:
    conv = _Converter(schema)
    body = conv.visit(schema, "#")
    conv.rules["root"] = body
    return SchemaGrammar(conv.render(), list(dict.fromkeys(conv.ignored)))


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
        if kind in ("integer", "number", "boolean", "null"):
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

    def _string(self, schema: dict, path: str) -> str:
        lo = schema.get("minLength", 0)
        hi = schema.get("maxLength")
        if lo == 0 and hi is None:
            return self._primitive("string")
        if not isinstance(lo, int) or lo < 0 or (hi is not None and (not isinstance(hi, int) or hi < lo)):
            raise SchemaGrammarError(f"{path}: minLength/maxLength must be integers with 0 <= minLength <= maxLength")
        self._primitive("char")
        self._primitive("ws")
        return f'"\\"" {_repeat("char", lo, hi)} "\\"" ws'
