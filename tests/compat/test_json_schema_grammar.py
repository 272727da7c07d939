"""JSON Schema -> GBNF: the grammar's shape, and the errors that name the place in the schema."""
from __future__ import annotations

import pytest

from compat.json_schema_grammar import SchemaGrammarError, schema_to_gbnf
from compat.request_params import JSON_OBJECT_GBNF, RequestFieldError, merge_generation_params


def rules(schema) -> dict[str, str]:
    out = {}
    for line in schema_to_gbnf(schema).gbnf.splitlines():
        name, _, body = line.partition(" ::= ")
        out[name] = body
    return out


def test_required_properties_come_first_and_optional_ones_may_be_left_out():
    r = rules({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"},
                                                "c": {"type": "boolean"}}, "required": ["c", "a"]})
    # Schema order among the required ones; each optional one after them, in brackets.
    assert r["root"] == '"{" ws a-kv "," ws c-kv ( "," ws b-kv )? "}" ws'
    assert r["a-kv"] == '"\\"a\\"" ws ":" ws string'
    assert r["b-kv"].endswith("integer") and r["c-kv"].endswith("boolean")
    assert {"ws", "char", "string", "integer", "boolean"} <= set(r)
    assert "number" not in r and "value" not in r  # only what is used


def test_only_optional_properties_put_commas_right_whichever_comes_first():
    r = rules({"type": "object", "properties": {"x": {"type": "null"}, "y": {"type": "null"}}})
    assert r["props"] == 'x-kv ( "," ws y-kv )? | y-kv'
    assert r["root"] == '"{" ws props? "}" ws'


def test_enum_const_and_strings_with_bounds():
    r = rules({"type": "object", "required": ["k", "c", "s"], "properties": {
        "k": {"enum": ["on", 2, None]}, "c": {"const": {"x": "é\n"}},
        "s": {"type": "string", "minLength": 1, "maxLength": 5}}})
    assert r["k-kv"].endswith('( "\\"on\\"" ws | "2" ws | "null" ws )')
    assert r["c-kv"].endswith('"{\\"x\\":\\"é\\\\n\\"}" ws')
    assert r["s-kv"].endswith('"\\"" char{1,5} "\\"" ws')


def test_arrays_with_item_counts_and_tuples():
    assert rules({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4})["root"] == \
        '"[" ws integer ( "," ws integer ){1,3} "]" ws'
    assert rules({"type": "array", "items": {"type": "integer"}})["root"] == \
        '"[" ws ( integer ( "," ws integer )* )? "]" ws'
    assert rules({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}]})["root"] == \
        '"[" ws string "," ws number "]" ws'


def test_nullable_type_lists_any_of_and_recursive_refs():
    r = rules({"$defs": {"node": {"type": "object", "required": ["v"], "properties": {
        "v": {"type": ["integer", "null"]}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}}},
        "$ref": "#/$defs/node"})
    assert r["root"] == "ref-node"
    assert r["defs-node-v-kv"].endswith("( integer | null )")
    assert r["defs-node-next-kv"].endswith("( ref-node | null )")


def test_all_of_merges_object_parts():
    r = rules({"allOf": [{"$ref": "#/definitions/base"}, {"properties": {"b": {"type": "integer"}}, "required": ["b"]}],
               "definitions": {"base": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}})
    assert r["root"] == '"{" ws a-kv "," ws b-kv "}" ws'


def test_free_form_objects_and_empty_schema():
    assert rules({})["root"] == "value"
    free = rules({"type": "object"})
    assert free["root"] == '"{" ws ( kv ( "," ws kv )* )? "}" ws' and free["kv"] == 'string ":" ws value'
    typed = rules({"type": "object", "additionalProperties": {"type": "integer"}})
    assert typed["kv"] == 'string ":" ws integer'
    assert rules({"type": "object", "additionalProperties": False})["root"] == '"{" ws "}" ws'


def test_keywords_a_grammar_cannot_enforce_are_reported():
    g = schema_to_gbnf({"type": "object", "properties": {"d": {"type": "string", "format": "email"},
                                                         "n": {"type": "number", "minimum": 3},
                                                         "p": {"type": "string", "pattern": "(?=a)b"}}})
    assert g.ignored == ["#/properties/d: format 'email'", "#/properties/n: minimum",
                         "#/properties/p: pattern ('(?=' (lookaround and named groups) is not supported)"]


def _gbnf_to_regex(body: str):
    """A Python regex for a GBNF expression made only of literals, classes, groups, | and
    repetitions: enough to check the integer, format and pattern rules exhaustively."""
    import re as _re

    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == '"':
            j = i + 1
            lit = []
            while body[j] != '"':
                if body[j] == "\\":
                    lit.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(body[j + 1], body[j + 1]))
                    j += 2
                else:
                    lit.append(body[j])
                    j += 1
            out.append(_re.escape("".join(lit)))
            i = j + 1
        elif c == "[":
            j = body.index("]", i + 1)
            while body[j - 1] == "\\":
                j = body.index("]", j + 1)
            out.append(body[i:j + 1])
            i = j + 1
        elif c == "(":
            out.append("(?:")
            i += 1
        elif c in ")|+*?":
            out.append(c)
            i += 1
        elif c == "{":
            j = body.index("}", i)
            out.append(body[i:j + 1])
            i = j + 1
        else:
            i += 1
    return _re.compile("".join(out))


@pytest.mark.parametrize("lo, hi", [(3, 17), (-12, 305), (0, 0), (-5, -2), (1, None), (None, 7), (100, 999),
                                    (1234, 56789), (-1000, 1000)])
def test_integer_bounds_admit_exactly_the_range(lo, hi):
    schema = {"type": "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    body = rules(schema)["int"].removesuffix(" ws")
    rx = _gbnf_to_regex(body)
    for n in range(-3000, 60000, 7 if hi is None or hi > 3000 else 1):
        assert bool(rx.fullmatch(str(n))) == ((lo is None or n >= lo) and (hi is None or n <= hi)), n
    assert not rx.fullmatch("007") and not rx.fullmatch("-0")


def test_exclusive_bounds_and_empty_ranges():
    assert rules({"type": "integer", "exclusiveMinimum": 2, "exclusiveMaximum": 5})["int"] == "( [3-4] ) ws"
    assert rules({"type": "integer", "minimum": 2, "exclusiveMinimum": True, "maximum": 4})["int"] == "( [3-4] ) ws"
    with pytest.raises(SchemaGrammarError, match="no integer lies between"):
        schema_to_gbnf({"type": "integer", "minimum": 5, "maximum": 4})


def test_formats_are_enforced():
    rx = _gbnf_to_regex(rules({"type": "string", "format": "date"})["date"].removesuffix(" ws"))
    assert rx.fullmatch('"2026-12-02"') and not rx.fullmatch('"2026-13-02"') and not rx.fullmatch('"26-12-02"')
    rx = _gbnf_to_regex(rules({"type": "string", "format": "date-time"})["date-time"].removesuffix(" ws"))
    assert rx.fullmatch('"2026-12-02T05:16:24Z"') and rx.fullmatch('"2026-12-02T05:16:24.5+09:00"')
    rx = _gbnf_to_regex(rules({"type": "string", "format": "uuid"})["uuid"].removesuffix(" ws"))
    assert rx.fullmatch('"123e4567-e89b-12d3-a456-426614174000"') and not rx.fullmatch('"123e4567"')


def test_patterns_are_enforced_and_json_escaped():
    rx = _gbnf_to_regex(rules({"type": "string", "pattern": "^[A-Z]{2}-\\d{3,4}$"})["pattern"].removesuffix(" ws"))
    assert rx.fullmatch('"AB-123"') and rx.fullmatch('"XY-9999"') and not rx.fullmatch('"ab-123"')
    # A quote or backslash the pattern allows comes out escaped, so the answer stays valid JSON.
    rx = _gbnf_to_regex(rules({"type": "string", "pattern": 'a["\\\\]b|c.'})["pattern"].removesuffix(" ws"))
    assert rx.fullmatch('"a\\"b"') and rx.fullmatch('"a\\\\b"') and rx.fullmatch('"cz"')
    assert not rx.fullmatch('"a"b"') and not rx.fullmatch('"c""')


def test_deep_schemas_are_refused_with_a_clear_error():
    deep: dict = {"type": "string"}
    for _ in range(500):
        deep = {"type": "array", "items": deep}
    with pytest.raises(SchemaGrammarError, match="nests deeper than 64 levels"):
        schema_to_gbnf(deep)


@pytest.mark.parametrize("schema, message", [
    ({"$ref": "#/$defs/missing"}, "#: $ref '#/$defs/missing' points at nothing in the schema"),
    ({"$ref": "https://example.com/s.json"}, "only local $ref"),
    ({"type": "object", "properties": {"a": {"type": "strin"}}}, "#/properties/a: unknown type 'strin'"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "required names 'b'"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems/maxItems"),
    ({"enum": []}, "enum must be a non-empty list"),
    (False, "admits no value"),
    ("string", "a schema must be an object"),
])
def test_bad_schemas_say_where(schema, message):
    with pytest.raises(SchemaGrammarError) as err:
        schema_to_gbnf(schema)
    assert message in str(err.value)


def test_response_format_shapes():
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}
    openai = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": schema}}
    g = merge_generation_params(None, {"response_format": openai}, endpoint="chat").sampling.grammar
    assert g == schema_to_gbnf(schema).gbnf
    llama_server = {"type": "json_object", "schema": schema}
    assert merge_generation_params(None, {"response_format": llama_server}, endpoint="chat").sampling.grammar == g
    plain = merge_generation_params(None, {"response_format": {"type": "json_object"}}, endpoint="chat")
    assert plain.sampling.grammar == JSON_OBJECT_GBNF
    with pytest.raises(RequestFieldError, match="response_format json schema: #/properties/a: unknown type"):
        bad = {"type": "json_schema", "json_schema": {"schema": {"properties": {"a": {"type": "bool"}}}}}
        merge_generation_params(None, {"response_format": bad}, endpoint="chat")
    with pytest.raises(RequestFieldError, match="must be an object with a 'schema'"):
        merge_generation_params(None, {"response_format": {"type": "json_schema", "json_schema": "x"}}, endpoint="chat")
