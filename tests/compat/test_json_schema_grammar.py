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
    g = schema_to_gbnf({"type": "object", "properties": {"d": {"type": "string", "format": "date"},
                                                         "n": {"type": "integer", "minimum": 3}}})
    assert g.ignored == ["#/properties/d: format", "#/properties/n: minimum"]


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
