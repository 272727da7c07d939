"""Schema grammars on a real llama.cpp sampler: accepted, and sampled answers fit the schema."""
from __future__ import annotations

import json
import re

import pytest

from compat.json_schema_grammar import schema_to_gbnf
from compat.params import GenerationParams, SamplingParams
from tests.engine.conftest import submit

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer"},
        "mood": {"enum": ["happy", "sad", None]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 3},
        "score": {"type": ["number", "null"]},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "mood"],
}
TREE = {
    "$defs": {"node": {"type": "object", "required": ["v"], "properties": {
        "v": {"type": "integer"},
        "kids": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}}}},
    "type": "object", "required": ["root"], "properties": {"root": {"$ref": "#/$defs/node"}},
}
TUPLE = {"type": "array", "prefixItems": [{"const": "point"}, {"type": "number"}, {"type": "number"}]}
ONLY_OPTIONAL = {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}}}
CHECKED = {
    "type": "object",
    "required": ["age", "day", "code", "id"],
    "properties": {
        "age": {"type": "integer", "minimum": 18, "maximum": 120},
        "day": {"type": "string", "format": "date"},
        "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
        "id": {"type": "string", "format": "uuid"},
    },
}


def fits(value, schema, root) -> bool:
    """A validator for the subset the converter handles (enough to check the grammar's output)."""
    if "$ref" in schema:
        target = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        return fits(value, target, root)
    if "const" in schema:
        return value == schema["const"]
    if "enum" in schema:
        return value in schema["enum"]
    kind = schema.get("type")
    if isinstance(kind, list):
        return any(fits(value, {**schema, "type": k}, root) for k in kind)
    if kind == "object":
        props = schema.get("properties", {})
        return (isinstance(value, dict) and set(value) <= set(props)
                and all(r in value for r in schema.get("required", []))
                and all(fits(v, props[k], root) for k, v in value.items()))
    if kind == "array" or "prefixItems" in schema:
        if not isinstance(value, list):
            return False
        if "prefixItems" in schema:
            return len(value) == len(schema["prefixItems"]) and all(
                fits(v, s, root) for v, s in zip(value, schema["prefixItems"]))
        return (schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 1 << 30)
                and all(fits(v, schema.get("items", {}), root) for v in value))
    if kind == "string" and "pattern" in schema:
        return isinstance(value, str) and re.fullmatch(schema["pattern"].strip("^$"), value) is not None
    if kind == "string" and schema.get("format") == "date":
        return isinstance(value, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", value) is not None
    if kind == "string" and schema.get("format") == "uuid":
        return isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", value) is not None
    if kind == "string":
        # A random model's byte tokens can form broken UTF-8 (overlong forms, say) that
        # llama.cpp's grammar reads as one code point and the text shows as up to 4 U+FFFD.
        n = len(re.sub("\ufffd{1,4}", "\ufffd", value)) if isinstance(value, str) else -1
        return schema.get("minLength", 0) <= n <= schema.get("maxLength", 1 << 30)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)
                and schema.get("minimum", -(1 << 60)) <= value <= schema.get("maximum", 1 << 60))
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    return True


@pytest.mark.parametrize("schema", [PERSON, TREE, TUPLE, ONLY_OPTIONAL, CHECKED],
                         ids=["person", "tree", "tuple", "optional", "bounds-formats-pattern"])
def test_sampled_answers_fit_the_schema(schema, gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=3, n_ctx=2048)
    grammar = schema_to_gbnf(schema).gbnf
    runs = [submit(engine, "Describe it as JSON:", GenerationParams(
        SamplingParams(temperature=1.0, seed=seed, grammar=grammar), max_tokens=600)) for seed in range(3)]
    for run in runs:
        run.wait()
        assert run.end.reason == "stop", (run.end, run.text)
        value = json.loads(run.text)
        assert fits(value, schema, schema), run.text
