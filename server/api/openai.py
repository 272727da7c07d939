"""OpenAI routes: chat/completions, completions, embeddings, models, tokenize (each also without /v1)."""
from __future__ import annotations

import base64
import json
import logging
import struct
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from server.api.errors import ErrorCatchingRoute, invalid_request_from
from server.api.generation import (
    ChatChunks,
    CompletionChunks,
    cancel_on_disconnect,
    choice_request,
    collect_all,
    combined_usage,
    new_id,
    now,
    stream_choices,
    usage_info,
)
from server.api.hooks import CompatFunctions
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
    UsageInfo,
)
from server.api.streaming import EventStream
from server.engine.types import GenerateRequest
from server.errors import FeatureDisabled, InvalidRequest, ModelNotFound

logger = logging.getLogger("llamaslots.api")

M = TypeVar("M", bound=BaseModel)
Endpoint = Literal["chat", "completion"]

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


def warn_unknown_fields(hooks: CompatFunctions, body: dict[str, Any], endpoint: str) -> None:
    for field, suggestion in hooks.unknown_request_fields(body, endpoint):
        hint = f' (did you mean "{suggestion}"?)' if suggestion else ""
        logger.warning(
            'unknown request field "%s" on /v1/%s ignored%s', field, _ENDPOINT_PATHS[endpoint], hint
        )
    for field in hooks.ignored_request_fields(body):
        logger.warning(
            'request field "%s" is not applied per request (as in LocalAI); set it in the model config',
            field,
        )


_ENDPOINT_PATHS = {"chat": "chat/completions", "completion": "completions", "embeddings": "embeddings"}


MAX_CHOICES = 16


def _choices(n: int | None) -> int:
    """How many choices to generate. They run side by side in the model's slots (LocalAI runs
    them one after another), streamed or not."""
    n = 1 if n is None else n
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n={n}: n must be between 1 and {MAX_CHOICES}")
    return n


def _reply_prefix(config: Any) -> str:
    template = getattr(config, "template", None)
    return getattr(template, "reply_prefix", None) or ""


def _engine_prompt(prompt: Any, bos_text: str) -> tuple[str, bool]:
    """The text to tokenize and whether the tokenizer adds BOS.

    As llama-server does: a GGUF Jinja template may write `{{ bos_token }}` itself, so a
    leading BOS text is stripped and the vocabulary's own add-BOS rule decides, which gives
    exactly one BOS whether or not the template wrote it. LocalAI's Go-templated prompts go
    to llama.cpp, which adds BOS by that same rule.
    """
    text = prompt.text
    if getattr(prompt, "source", None) == "tokenizer" and bos_text and text.startswith(bos_text):
        text = text[len(bos_text):]
    return text, True


# ---------------------------------------------------------------- generation routes


@dataclass
class _Prepared:
    """A generation ready to run: the held model handle (in `stack`), its request, its names."""

    stack: AsyncExitStack
    handle: Any
    config: Any
    requests: list[GenerateRequest]  # one per prompt (a completion may send several)
    model_name: str


async def _prepare(
    request: Request,
    body: dict[str, Any],
    model: str | None,
    endpoint: Endpoint,
    build_prompts: Callable[[Any, Any, Any, Any], list[Any]],
) -> _Prepared:
    """Resolve the model, merge params, hold the model, build the prompt. Errors raise here,
    before any response starts, so they reach the client with their own status."""
    state = request.app.state
    manager, hooks = state.manager, state.hooks
    config = manager.config_for(model)
    try:
        params = hooks.merge_generation_params(config, body, endpoint=endpoint)
    except hooks.request_errors as exc:
        raise InvalidRequest(str(exc)) from None
    stack = AsyncExitStack()
    try:
        # Waiting for a model (a swap, a load) can take long: a client that leaves meanwhile
        # stops waiting (the swap itself goes on in the manager).
        handle = await cancel_on_disconnect(request, lambda: stack.enter_async_context(manager.acquire(config.name)))
        try:
            prompts = build_prompts(hooks, manager, config, handle)
        except hooks.request_errors as exc:
            raise InvalidRequest(str(exc)) from None
        gen_requests = []
        for prompt in prompts:
            for warning in getattr(prompt, "warnings", ()) or ():
                logger.warning("prompt for model %s: %s", config.name, warning)
            logger.debug("prompt for model %s:\n%s", config.name, prompt.text)
            text, add_special = _engine_prompt(prompt, handle.info.bos_text)
            gen_requests.append(GenerateRequest(prompt=text, params=params, add_special=add_special))
    except BaseException:
        await stack.aclose()
        raise
    return _Prepared(stack, handle, config, gen_requests, model or config.name)


async def _run(
    request: Request, prepared: _Prepared, stream: bool, include_usage: bool, fmt: Any,
    respond: Callable[[list[tuple[str, Any]], UsageInfo], BaseModel], *, echo: bool = False, n_choices: int = 1,
) -> Response:
    hooks: CompatFunctions = request.app.state.hooks
    # LocalAI's order: reply_prefix is part of the model's reply, echo puts the prompt before
    # it, and post-processing sees the result.
    reply_prefix = _reply_prefix(prepared.config)
    # Choices prompt by prompt, n each (OpenAI's order: choice index = prompt * n + i).
    requests = [choice_request(r, i) for r in prepared.requests for i in range(n_choices)]
    prefixes = [(r.prompt if echo and isinstance(r.prompt, str) else "") + reply_prefix for r in requests]
    if stream:
        try:
            hooks.stream_finetuner(prepared.config)  # fails here, not mid-stream, on a bad config
        except BaseException:
            # The held model must go back, or a later swap would wait for it forever.
            await prepared.stack.aclose()
            raise
        events = stream_choices(
            [prepared.handle.generate(r) for r in requests],
            fmt,
            lambda: hooks.stream_finetuner(prepared.config),
            prefixes=prefixes,
            per_prompt=n_choices,
            include_usage=include_usage,
        )
        return EventStream(events, on_close=prepared.stack.aclose)

    # A client that leaves raises ClientDisconnected, which the route turns into a 499.
    async with prepared.stack:
        results = await cancel_on_disconnect(
            request, lambda: collect_all([prepared.handle.generate(r) for r in requests])
        )
    answers = [(hooks.finetune(prepared.config, p + r.text), r.finished) for p, r in zip(prefixes, results)]
    usage = usage_info(combined_usage([r.finished.usage for r in results], n_choices))
    return JSONResponse(respond(answers, usage).model_dump(mode="json"))


@_route("/chat/completions", "POST")
async def chat_completions(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate(ChatCompletionRequest, body)
    hooks: CompatFunctions = request.app.state.hooks
    warn_unknown_fields(hooks, body, "chat")
    n_choices = _choices(req.n)
    payload = req.model_dump(exclude_unset=True)
    if body.get("tools") or body.get("functions"):
        logger.info("request has tools: they reach the prompt (template.function), but tool-call "
                    "parsing is not implemented, so the answer comes back as text")

    def build(hooks: CompatFunctions, manager: Any, config: Any, handle: Any) -> Any:
        info = handle.info
        template = None
        if getattr(info, "chat_template", None):
            template = hooks.tokenizer_template(info.chat_template, info.bos_text, info.eos_text)
        return [hooks.build_chat_prompt(config, manager.models_path, payload, tokenizer_template=template)]

    prepared = await _prepare(request, payload, req.model, "chat", build)
    ident, created = new_id("chatcmpl"), now()

    def respond(answers: list[tuple[str, Any]], usage: UsageInfo) -> ChatCompletion:
        return ChatCompletion(
            id=ident,
            created=created,
            model=prepared.model_name,
            choices=[
                ChatChoice(index=i, message=AssistantMessage(content=text), finish_reason=finished.reason)
                for i, (text, finished) in enumerate(answers)
            ],
            usage=usage,
        )

    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    fmt = ChatChunks(ident, created, prepared.model_name)
    return await _run(request, prepared, req.stream, include_usage, fmt, respond, n_choices=n_choices)


@_route("/completions", "POST")
async def completions(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate(CompletionRequest, body)
    hooks: CompatFunctions = request.app.state.hooks
    warn_unknown_fields(hooks, body, "completion")
    n_choices = _choices(req.n)
    prompts = _prompt_list(req.prompt, n_choices)
    payload = req.model_dump(exclude_unset=True)

    def build(hooks: CompatFunctions, manager: Any, config: Any, handle: Any) -> Any:
        return [hooks.build_completion_prompt(config, manager.models_path, p, payload) for p in prompts]

    prepared = await _prepare(request, payload, req.model, "completion", build)
    ident, created = new_id("cmpl"), now()

    def respond(answers: list[tuple[str, Any]], usage: UsageInfo) -> Completion:
        return Completion(
            id=ident,
            created=created,
            model=prepared.model_name,
            choices=[
                CompletionChoice(index=i, text=text, finish_reason=finished.reason)
                for i, (text, finished) in enumerate(answers)
            ],
            usage=usage,
        )

    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    fmt = CompletionChunks(ident, created, prepared.model_name)
    return await _run(request, prepared, req.stream, include_usage, fmt, respond, echo=bool(req.echo),
                      n_choices=n_choices)


MAX_GENERATIONS = 64


def _prompt_list(prompt: str | list[str], n: int) -> list[str]:
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
