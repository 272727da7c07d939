"""OpenAI routes: chat/completions, completions, embeddings, models, tokenize (each also without /v1)."""
from __future__ import annotations

import base64
import json
import logging
import struct
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from compat.config_schema import ModelConfig
from compat.gotemplate.goregex import GoRegexError
from compat.params import GenerationParams
from compat.postprocess import StreamPostprocessor, postprocess_reply
from compat.prompt import PromptResult, TokenizerTemplate, build_chat_prompt, build_completion_prompt
from compat.request_params import ignored_request_fields, merge_generation_params, unknown_request_fields
from server.api.errors import ErrorCatchingRoute, invalid_request_from
from server.api.generation import (
    ChatChunks,
    CompletionChunks,
    choice_request,
    combined_usage,
    new_id,
    now,
    stream_choices,
    usage_info,
)
from server.api.holding import hold_model
from server.api.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    EmbeddingData,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
)
from server.engine.types import GenerateRequest, ModelInfo
from server.errors import FeatureDisabled, InvalidRequest, ModelConfigInvalid, ModelNotFound
from server.manager import ModelManager

logger = logging.getLogger("llamaslots.api")

M = TypeVar("M", bound=BaseModel)
Endpoint = Literal["chat", "completion"]


@dataclass(frozen=True)
class ReplyId:
    """What every chunk and answer of one reply repeats."""

    id: str
    created: int
    model: str


router = APIRouter(route_class=ErrorCatchingRoute)


def _route(path: str, method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler at /v1<path> and at <path>, as LocalAI serves both."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route("/v1" + path, fn, methods=[method])
        router.add_api_route(path, fn, methods=[method], include_in_schema=False)
        return fn

    return register


# ---------------------------------------------------------------- request decoding


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8 text; send a JSON object") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, got a JSON {_json_kind(body)}"
        )
    return body


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null"


def validate(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request_from(exc) from None


def warn_unknown_fields(body: dict[str, Any], endpoint: Endpoint) -> None:
    for field, suggestion in unknown_request_fields(body, endpoint):
        hint = f' (did you mean "{suggestion}"?)' if suggestion else ""
        logger.warning(
            'unknown request field "%s" on /v1/%s ignored%s', field, _ENDPOINT_PATHS[endpoint], hint
        )
    for field in ignored_request_fields(body):
        logger.warning(
            'request field "%s" is not applied per request (as in LocalAI); set it in the model config',
            field,
        )


_ENDPOINT_PATHS = {"chat": "chat/completions", "completion": "completions"}


MAX_CHOICES = 16
MAX_GENERATIONS = 64


def choice_count(n: int | None) -> int:
    """How many choices to generate. They run side by side in the model's slots (LocalAI runs
    them one after another), streamed or not."""
    n = 1 if n is None else n
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n={n}: n must be between 1 and {MAX_CHOICES}")
    return n


def prompt_list(prompt: str | list[str], n: int) -> list[str]:
    """The prompts of a completion request: each string of a list is a prompt of its own with
    n choices, as LocalAI and OpenAI do."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts:
        raise InvalidRequest("prompt: the list of prompts is empty")
    if len(prompts) * n > MAX_GENERATIONS:
        raise InvalidRequest(
            f"prompt: {len(prompts)} prompts x n={n} is {len(prompts) * n} generations; "
            f"at most {MAX_GENERATIONS} per request"
        )
    return prompts


def stream_postprocessor(config: ModelConfig) -> StreamPostprocessor:
    """The model's post-processing for one stream. A pattern Go would refuse fails here, before
    any generation runs (check-config and `run` name it first; LocalAI dies on it at reply time)."""
    try:
        return StreamPostprocessor(config)
    except GoRegexError as exc:
        raise ModelConfigInvalid(config.name, f"cutstrings/extract_regex: {exc}") from None


def tokenizer_template(info: ModelInfo) -> TokenizerTemplate | None:
    """The model file's own chat template, for configs that leave chat prompts to it."""
    if not info.chat_template:
        return None
    return TokenizerTemplate(info.chat_template, info.bos_text, info.eos_text)


def engine_request(config: ModelConfig, prompt: PromptResult, params: GenerationParams) -> GenerateRequest:
    for warning in prompt.warnings:
        logger.warning("prompt for model %s: %s", config.name, warning)
    logger.debug("prompt for model %s:\n%s", config.name, prompt.text)
    return GenerateRequest(prompt=prompt.engine_text, params=params)


def choices_of(requests: list[GenerateRequest], n: int) -> list[GenerateRequest]:
    """n choices per prompt, prompt by prompt (OpenAI's order: choice index = prompt * n + i)."""
    return [choice_request(r, i) for r in requests for i in range(n)]


def include_usage(req: ChatCompletionRequest | CompletionRequest) -> bool:
    return bool(req.stream_options and req.stream_options.include_usage)


# ---------------------------------------------------------------- generation routes


@_route("/chat/completions", "POST")
async def chat_completions(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate(ChatCompletionRequest, body)
    warn_unknown_fields(body, "chat")
    n = choice_count(req.n)
    payload = req.model_dump(exclude_unset=True)
    if payload.get("tools") or payload.get("functions"):
        logger.info("request has tools: they reach the prompt (template.function), but tool-call "
                    "parsing is not implemented, so the answer comes back as text")
    manager: ModelManager = request.app.state.manager
    config = manager.config_for(req.model)
    params = merge_generation_params(config, payload, endpoint="chat")
    stream_postprocessor(config)
    reply_prefix = config.template.reply_prefix
    reply = ReplyId(new_id("chatcmpl"), now(), req.model or config.name)

    async with hold_model(request, manager, config.name) as held:
        prompt = build_chat_prompt(config, manager.models_path, payload,
                                   tokenizer_template=tokenizer_template(held.handle.info))
        choices = choices_of([engine_request(config, prompt, params)], n)
        if req.stream:
            events = stream_choices(
                [held.handle.generate(c) for c in choices], ChatChunks(reply.id, reply.created, reply.model),
                lambda: StreamPostprocessor(config), prefixes=[reply_prefix] * len(choices),
                per_prompt=n, include_usage=include_usage(req),
            )
            return held.stream(events)
        results = await held.collect(choices)

    answer = ChatCompletion(
        id=reply.id, created=reply.created, model=reply.model,
        choices=[
            ChatChoice(index=i, message=AssistantMessage(content=postprocess_reply(config, reply_prefix + r.text)),
                       finish_reason=r.finished.reason)
            for i, r in enumerate(results)
        ],
        usage=usage_info(combined_usage([r.finished.usage for r in results], n)),
    )
    return JSONResponse(answer.model_dump(mode="json"))


@_route("/completions", "POST")
async def completions(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate(CompletionRequest, body)
    warn_unknown_fields(body, "completion")
    n = choice_count(req.n)
    prompts = prompt_list(req.prompt, n)
    payload = req.model_dump(exclude_unset=True)
    manager: ModelManager = request.app.state.manager
    config = manager.config_for(req.model)
    params = merge_generation_params(config, payload, endpoint="completion")
    stream_postprocessor(config)
    reply = ReplyId(new_id("cmpl"), now(), req.model or config.name)
    # LocalAI's order: reply_prefix is part of the model's reply, echo puts the prompt before
    # it, and post-processing sees the result.
    prefixes = [(p if req.echo else "") + config.template.reply_prefix for p in prompts for _ in range(n)]

    async with hold_model(request, manager, config.name) as held:
        built = [build_completion_prompt(config, manager.models_path, p, payload) for p in prompts]
        choices = choices_of([engine_request(config, b, params) for b in built], n)
        if req.stream:
            events = stream_choices(
                [held.handle.generate(c) for c in choices], CompletionChunks(reply.id, reply.created, reply.model),
                lambda: StreamPostprocessor(config), prefixes=prefixes, per_prompt=n,
                include_usage=include_usage(req),
            )
            return held.stream(events)
        results = await held.collect(choices)

    answer = Completion(
        id=reply.id, created=reply.created, model=reply.model,
        choices=[
            CompletionChoice(index=i, text=postprocess_reply(config, prefix + r.text), finish_reason=r.finished.reason)
            for i, (prefix, r) in enumerate(zip(prefixes, results))
        ],
        usage=usage_info(combined_usage([r.finished.usage for r in results], n)),
    )
    return JSONResponse(answer.model_dump(mode="json"))


# ---------------------------------------------------------------- other routes


@_route("/embeddings", "POST")
async def embeddings(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate(EmbeddingRequest, body)
    manager = request.app.state.manager
    config = manager.config_for(req.model)
    if not getattr(config, "embeddings", False):
        raise FeatureDisabled(
            f'model "{config.name}" does not serve embeddings; set "embeddings: true" in its config'
        )
    texts = [req.input] if isinstance(req.input, str) else list(req.input)
    if not texts:
        raise InvalidRequest("input: the list is empty; send at least one string")
    async with manager.acquire(config.name) as handle:
        vectors = await handle.embed(texts)
        n_tokens = 0
        for text in texts:
            n_tokens += len(await handle.tokenize(text, add_special=True))
    data = [
        EmbeddingData(index=i, embedding=_encode(vector, req.encoding_format))
        for i, vector in enumerate(vectors)
    ]
    result = EmbeddingList(
        data=data,
        model=req.model or config.name,
        usage=EmbeddingUsage(prompt_tokens=n_tokens, total_tokens=n_tokens),
    )
    return JSONResponse(result.model_dump(mode="json"))


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        # OpenAI's format: little-endian float32, base64 (the openai client asks for it by default).
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return [float(x) for x in vector]


@_route("/models", "GET")
async def list_models(request: Request) -> Response:
    names = request.app.state.manager.list_models()
    return JSONResponse(ModelList(data=[ModelCard(id=name) for name in names]).model_dump())


@_route("/models/{model_id:path}", "GET")
async def get_model(request: Request, model_id: str) -> Response:
    if model_id not in request.app.state.manager.list_models():
        raise ModelNotFound(model_id)
    return JSONResponse(ModelCard(id=model_id).model_dump())


@_route("/tokenize", "POST")
async def tokenize(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate(TokenizeRequest, body)
    manager = request.app.state.manager
    config = manager.config_for(req.model)
    async with manager.acquire(config.name) as handle:
        tokens = await handle.tokenize(req.content)
    return JSONResponse(TokenizeResponse(tokens=tokens).model_dump())
