"""Tests for compat.request_params: LocalAI's request-over-config merge and unknown-field hints."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from compat.request_params import (
    JSON_OBJECT_GBNF,
    RequestFieldError,
    ignored_request_fields,
    merge_generation_params,
    unknown_request_fields,
)


def config(**params):
    top = {k: params.pop(k) for k in list(params) if k in ("stopwords", "grammar", "mirostat", "mirostat_tau", "mirostat_eta")}
    return SimpleNamespace(parameters=SimpleNamespace(**params), **top)


def test_defaults_when_nothing_set():
    g = merge_generation_params(SimpleNamespace(), {}, endpoint="chat")
    s = g.sampling
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.typical_p) == (0.9, 0.95, 40, 0.0, 1.0)
    assert s.seed is None and g.max_tokens is None and g.stop == ()
    assert (s.mirostat, s.mirostat_tau, s.mirostat_eta) == (0, 5.0, 0.1)
    assert s.repeat_last_n == 0 and s.repeat_penalty == 1.0


def test_pointer_fields_override_even_with_zero():
    c = config(temperature=0.7, top_k=40, top_p=0.7, seed=-1)
    g = merge_generation_params(c, {"temperature": 0, "top_p": 0.1, "top_k": 0, "seed": 5}, endpoint="chat")
    assert g.sampling.temperature == 0.0 and g.sampling.top_p == 0.1 and g.sampling.top_k == 0
    assert g.sampling.seed == 5


def test_null_pointer_field_does_not_override():
    g = merge_generation_params(config(temperature=0.7), {"temperature": None}, endpoint="chat")
    assert g.sampling.temperature == 0.7


def test_scalars_only_when_nonzero_and_bools_only_when_true():
    c = config(frequency_penalty=0.5, repeat_penalty=1.1, repeat_last_n=64, ignore_eos=True)
    g = merge_generation_params(c, {"frequency_penalty": 0, "repeat_penalty": 1.3, "ignore_eos": False,
                                    "repeat_last_n": 7}, endpoint="chat")
    assert g.sampling.frequency_penalty == 0.5
    assert g.sampling.repeat_penalty == 1.3
    assert g.sampling.repeat_last_n == 64  # not overridable per request
    assert g.sampling.ignore_eos is True


def test_stop_appended_to_stopwords():
    c = config(stopwords=["</s>", ""])
    assert merge_generation_params(c, {"stop": "###"}, endpoint="chat").stop == ("</s>", "###")
    assert merge_generation_params(c, {"stop": ["a", "b", 3]}, endpoint="completion").stop == ("</s>", "a", "b")


def test_max_tokens_rules():
    c = config(max_tokens=100)
    assert merge_generation_params(c, {}, endpoint="chat").max_tokens == 100
    assert merge_generation_params(c, {"max_tokens": 0}, endpoint="chat").max_tokens is None
    assert merge_generation_params(c, {"max_tokens": 5, "max_completion_tokens": 9}, endpoint="chat").max_tokens == 9


def test_seed_minus_one_is_random():
    assert merge_generation_params(config(seed=3), {"seed": -1}, endpoint="chat").sampling.seed is None
    assert merge_generation_params(config(seed=3), {}, endpoint="chat").sampling.seed == 3


def test_grammar_sources():
    c = config(grammar="root ::= \"x\"", mirostat=2, mirostat_tau=4.0)
    g = merge_generation_params(c, {}, endpoint="chat")
    assert g.sampling.grammar == 'root ::= "x"' and g.sampling.mirostat == 2 and g.sampling.mirostat_tau == 4.0
    g = merge_generation_params(c, {"grammar": "root ::= \"y\""}, endpoint="chat")
    assert g.sampling.grammar == 'root ::= "y"'
    g = merge_generation_params(c, {"response_format": {"type": "json_object"}}, endpoint="chat")
    assert g.sampling.grammar == JSON_OBJECT_GBNF
    assert merge_generation_params(c, {"response_format": {"type": "text"}}, endpoint="chat").sampling.grammar == 'root ::= "x"'


def test_logit_bias_and_type_errors():
    g = merge_generation_params(config(), {"logit_bias": {"15": -100}}, endpoint="chat")
    assert g.sampling.logit_bias == {15: -100.0}
    with pytest.raises(RequestFieldError, match="temperature"):
        merge_generation_params(config(), {"temperature": "hot"}, endpoint="chat")


def test_unknown_fields_with_suggestion():
    body = {"model": "m", "templature": 0.1, "top_p": 0.1, "messages": [], "xyzzy": 1}
    assert unknown_request_fields(body, "chat") == [("templature", "temperature"), ("xyzzy", None)]
    assert unknown_request_fields({"prompt": "x", "max_token": 3}, "completion") == [("max_token", "max_tokens")]
    assert unknown_request_fields({"top_k": 1, "repeat_penalty": 1, "reasoning_effort": "low"}, "chat") == []


def test_ignored_fields():
    assert ignored_request_fields({"mirostat": 2, "temperature": 1, "repeat_last_n": 3}) == ["mirostat", "repeat_last_n"]


def test_json_grammar_is_well_formed_gbnf():
    rules = [line.split("::=")[0].strip() for line in JSON_OBJECT_GBNF.strip().splitlines()]
    assert rules[0] == "root" and len(set(rules)) == len(rules)
    for name in ("object", "array", "string", "number", "value", "ws"):
        assert name in rules


def test_logit_bias_falls_back_to_config():
    c = SimpleNamespace(parameters=SimpleNamespace(logit_bias={"7": 2}))
    assert merge_generation_params(c, {}, endpoint="chat").sampling.logit_bias == {7: 2.0}
    assert merge_generation_params(c, {"logit_bias": {"8": 1}}, endpoint="chat").sampling.logit_bias == {8: 1.0}


def test_with_real_model_config():
    from compat.config import ModelConfig, PredictionOptions
    c = ModelConfig(name="m", parameters=PredictionOptions(model="m.gguf", temperature=0.7, top_p=0.7, seed=-1),
                    stopwords=["</s>"], mirostat=2)
    g = merge_generation_params(c, {"top_p": 0.1, "stop": "x"}, endpoint="chat")
    assert (g.sampling.temperature, g.sampling.top_p, g.sampling.seed, g.sampling.mirostat) == (0.7, 0.1, None, 2)
    assert g.stop == ("</s>", "x")
