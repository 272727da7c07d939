"""Merging an OpenAI/LocalAI request body over a model config into GenerationParams (LocalAI's rules)."""
from __future__ import annotations

import difflib
import logging
from typing import Any, Literal

from compat.errors import RequestError
from compat.json_schema_grammar import SchemaGrammarError, schema_to_gbnf
from compat.params import GenerationParams, SamplingParams

log = logging.getLogger("llamaslots.compat")

Endpoint = Literal["chat", "completion"]

# LocalAI's SetDefaults values for a llama-cpp model (core/config/model_config.go).
DEFAULT_TEMPERATURE = 0.9
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40
DEFAULT_MIN_P = 0.0
DEFAULT_TYPICAL_P = 1.0
DEFAULT_MIROSTAT = 0
DEFAULT_MIROSTAT_TAU = 5.0
DEFAULT_MIROSTAT_ETA = 0.1

# A compact JSON grammar (GBNF) whose root is an object: what response_format json_object asks.
JSON_OBJECT_GBNF = r'''root ::= object
value ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}" ws
array ::= "[" ws ( value ( "," ws value )* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] ) )* "\"" ws
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )? ws
ws ::= ( [ \t\n] ws )?
'''


class RequestFieldError(RequestError):
    """A request field with a value of the wrong type."""


def _cfg_params(config: Any) -> Any:
    return getattr(config, "parameters", None)


def _get(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _number(body: dict, name: str, kind: type) -> Any:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RequestFieldError(f"request field {name!r} must be a number, got {type(v).__name__}")
    if kind is int:
        if isinstance(v, float) and not v.is_integer():
            raise RequestFieldError(f"request field {name!r} must be an integer, got {v}")
        return int(v)
    return float(v)


def _stop_list(value: Any) -> list[str]:
    # LocalAI: a string is one stop word (when non-empty); a list keeps its string entries.
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def _response_format_grammar(value: Any) -> str | None:
    """The grammar a response_format asks for: any JSON object, or one that fits a schema.

    OpenAI's shape is {"type": "json_schema", "json_schema": {"name", "schema", "strict"}};
    llama-server's {"type": "json_object", "schema": {...}} is accepted too.
    """
    kind = value.get("type") if isinstance(value, dict) else value if isinstance(value, str) else None
    if kind not in ("json_object", "json_schema"):
        return None
    schema = None
    if isinstance(value, dict):
        spec = value.get("json_schema")
        if kind == "json_schema" and spec is not None:
            if not isinstance(spec, dict) or "schema" not in spec:
                raise RequestFieldError("response_format.json_schema must be an object with a 'schema'")
            schema = spec["schema"]
        elif "schema" in value:
            schema = value["schema"]
    if schema is None:
        return JSON_OBJECT_GBNF
    try:
        grammar = schema_to_gbnf(schema)
    except SchemaGrammarError as exc:
        raise RequestFieldError(f"response_format json schema: {exc}") from None
    if grammar.ignored:
        log.warning("response_format json schema: a grammar cannot enforce %s; the answer has the "
                    "schema's shape but these are not checked", ", ".join(grammar.ignored))
    return grammar.gbnf


def _logit_bias(value: Any) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestFieldError("request field 'logit_bias' must be an object of token id -> bias")
    out: dict[int, float] = {}
    for k, v in value.items():
        try:
            out[int(k)] = float(v)
        except (TypeError, ValueError):
            raise RequestFieldError(f"logit_bias key {k!r} is not a token id or its bias {v!r} is not a number") from None
    return out


def merge_generation_params(config: Any, request: dict, *, endpoint: Endpoint) -> GenerationParams:
    """The generation settings LocalAI would use for `request` on a model with `config`.

    Pointer fields (temperature, top_p, top_k, min_p, typical_p, seed, max_tokens) override
    when present, even as 0; penalties override only when non-zero; ignore_eos only when true;
    `stop` is appended to the config's stopwords; mirostat*/repeat_last_n come from the config.
    """
    if endpoint not in ("chat", "completion"):
        raise ValueError(f"endpoint must be 'chat' or 'completion', not {endpoint!r}")
    p = _cfg_params(config)

    def pick(name: str, default: Any, kind: type) -> Any:
        v = _number(request, name, kind)
        if v is not None:
            return v
        c = _get(p, name)
        return default if c is None else kind(c)

    temperature = pick("temperature", DEFAULT_TEMPERATURE, float)
    top_p = pick("top_p", DEFAULT_TOP_P, float)
    top_k = pick("top_k", DEFAULT_TOP_K, int)
    min_p = pick("min_p", DEFAULT_MIN_P, float)
    typical_p = pick("typical_p", DEFAULT_TYPICAL_P, float)
    seed = pick("seed", -1, int)

    def nonzero(name: str, default: float) -> float:
        v = _number(request, name, float)
        if v:
            return v
        c = _get(p, name)
        return float(c) if c else default

    # repeat_penalty 0 (LocalAI's unset) is sent as "no penalty"; repeat_last_n is never taken
    # from the request and defaults to 0, which turns llama.cpp's penalties sampler off
    # (so repeat_penalty without repeat_last_n does nothing, as in LocalAI).
    repeat_penalty = nonzero("repeat_penalty", 1.0)
    frequency_penalty = nonzero("frequency_penalty", 0.0)
    presence_penalty = nonzero("presence_penalty", 0.0)
    repeat_last_n = int(_get(p, "repeat_last_n") or 0)
    ignore_eos = bool(request.get("ignore_eos") is True or _get(p, "ignore_eos"))

    max_tokens = _number(request, "max_completion_tokens", int)
    if max_tokens is None:
        max_tokens = _number(request, "max_tokens", int)
    if max_tokens is None:
        max_tokens = _get(p, "max_tokens")

    grammar = _get(config, "grammar") or None
    if isinstance(request.get("grammar"), str) and request["grammar"]:
        grammar = request["grammar"]
    rf = _response_format_grammar(request.get("response_format"))
    if rf is not None:
        grammar = rf

    stops = [s for s in (_get(config, "stopwords") or []) if s] + [s for s in _stop_list(request.get("stop")) if s]

    sampling = SamplingParams(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        typical_p=typical_p,
        repeat_penalty=repeat_penalty,
        repeat_last_n=repeat_last_n,
        frequency_penalty=frequency_penalty,
        presence_penalty=presence_penalty,
        seed=None if seed == -1 else seed,
        # LocalAI's merge never copies a request's logit_bias; we honour it (OpenAI semantics) and
        # fall back to the config's parameters.logit_bias.
        logit_bias=_logit_bias(request.get("logit_bias") if request.get("logit_bias") is not None
                               else (_get(p, "logit_bias") or None)),
        ignore_eos=ignore_eos,
        mirostat=int(_get(config, "mirostat") or DEFAULT_MIROSTAT),
        mirostat_tau=float(_get(config, "mirostat_tau") or DEFAULT_MIROSTAT_TAU),
        mirostat_eta=float(_get(config, "mirostat_eta") or DEFAULT_MIROSTAT_ETA),
        grammar=grammar,
    )
    return GenerationParams(
        sampling=sampling,
        max_tokens=int(max_tokens) if max_tokens and int(max_tokens) > 0 else None,
        stop=tuple(stops),
    )


# --- field names -----------------------------------------------------------------------------

OPENAI_CHAT_FIELDS = frozenset("""
model messages frequency_penalty logit_bias logprobs top_logprobs max_tokens max_completion_tokens n
presence_penalty response_format seed stop stream stream_options temperature top_p tools tool_choice
parallel_tool_calls user functions function_call metadata store reasoning_effort modalities audio
prediction service_tier web_search_options verbosity prompt_cache_key safety_identifier
""".split())
OPENAI_COMPLETION_FIELDS = frozenset("""
model prompt best_of echo frequency_penalty logit_bias logprobs max_tokens n presence_penalty seed stop
stream stream_options suffix temperature top_p user
""".split())
# LocalAI's OpenAIRequest + embedded PredictionOptions JSON names (one struct serves both endpoints).
LOCALAI_FIELDS = frozenset("""
model messages prompt input instruction echo functions function_call tools tool_choice grammar
grammar_json_functions grammar_json_name backend model_base_name stream stream_options n logprobs
top_logprobs logit_bias response_format max_completion_tokens reasoning_effort metadata
language translate top_p top_k min_p temperature max_tokens ignore_eos repeat_penalty repeat_last_n
n_keep frequency_penalty presence_penalty tfz typical_p seed negative_prompt rope_freq_base
rope_freq_scale negative_prompt_scale clip_skip tokenizer batch mirostat mirostat_eta mirostat_tau
file files size step quality mode ref_images encoding_format dimensions pooling
pooling_half_life_tokens context_size threads stop
""".split())
# Parsed by LocalAI but never applied to generation (§3.2 of the compat notes).
IGNORED_BY_LOCALAI = frozenset("repeat_last_n tfz mirostat mirostat_eta mirostat_tau context_size threads".split())


def known_request_fields(endpoint: Endpoint) -> frozenset[str]:
    openai = OPENAI_CHAT_FIELDS if endpoint == "chat" else OPENAI_COMPLETION_FIELDS
    return openai | LOCALAI_FIELDS


def unknown_request_fields(body: dict, endpoint: Endpoint) -> list[tuple[str, str | None]]:
    """Each field neither OpenAI nor LocalAI knows, with the closest known name (or None)."""
    known = known_request_fields(endpoint)
    out = []
    for name in body:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        if not close:
            close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.75)
        out.append((name, close[0] if close else None))
    return out


def ignored_request_fields(body: dict) -> list[str]:
    """Fields LocalAI accepts in a request but never uses (e.g. mirostat, repeat_last_n)."""
    return [name for name in body if name in IGNORED_BY_LOCALAI]
