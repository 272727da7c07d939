"""OpenAI routes: chat/completions, completions, embeddings, models, tokenize (each also without /v1)."""
from __future__ import annotations

import base64
import dataclasses
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from compat.config_schema import ModelConfig
from compat.params import GenerationParams
from compat.postprocess import StreamPostprocessor, validate_postprocess
from compat.prompt import PromptResult, TokenizerTemplate, build_chat_prompt, build_completion_prompt
from compat.reasoning import ReasoningSettings, open_reasoning, reasoning_settings
from compat.request_params import ignored_request_fields, merge_generation_params, unknown_request_fields
from compat.tool_calls import (
    MARKERS, ContentDelta, ToolCallParser, ToolRequest, ToolSettings, native_format, tool_grammar, tool_request,
    tool_settings, validate_tool_regexes,
)
from compat.tool_calls import Format as ToolFormat
from server.api.answers import ChatAnswer, ChatWriter, ChoicePipeline, CompletionLogprobs, CompletionWriter
from server.api.body import read_json_object
from server.api.errors import ErrorCatchingRoute, invalid_request_from
from server.api.generation import (
    choice_request,
    combined_usage,
    new_id,
    now,
    stream_choices,
)
from server.api.holding import hold_model
from server.api.responses import (
    ResponseStore, ResponseWriter, StoredResponse, new_response_id, response_object, responses_call,
)
from server.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingData,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    ResponsesRequest,
    TokenizeRequest,
    TokenizeResponse,
)
from server.engine.types import GenerateRequest, ModelInfo, Usage
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


def check_reply_regexes(config: ModelConfig) -> None:
    """A post-processing or tool-call pattern Go would refuse fails the request here, before any
    generation runs (check-config and `run` name it first; LocalAI dies on it at reply time)."""
    problems = validate_postprocess(config) + validate_tool_regexes(config)
    if problems:
        key, index, exc = problems[0]
        raise ModelConfigInvalid(config.name, f"{key}[{index}]: {exc}")


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


MAX_TOP_LOGPROBS = 20


def chat_logprobs(req: ChatCompletionRequest) -> int | None:
    """top_logprobs when the request asked for logprobs (None: it did not)."""
    top = req.top_logprobs
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        raise InvalidRequest(f"top_logprobs={top}: it must be between 0 and {MAX_TOP_LOGPROBS}")
    if not req.logprobs:
        if top:
            raise InvalidRequest("top_logprobs needs logprobs: true")
        return None
    return top or 0


@dataclass(frozen=True)
class ReplyPlan:
    """How a chat reply is produced and read: its generation settings and parsing."""

    params: GenerationParams
    reasoning: ReasoningSettings
    inside: str | None  # the reasoning end marker when the prompt opened a block
    tools: ToolRequest | None
    tool_format: ToolFormat
    tool_settings: ToolSettings
    logprobs: int | None

    def pipeline(self, config: ModelConfig) -> ChoicePipeline:
        parser = ToolCallParser(self.tools, self.tool_format, self.tool_settings) \
            if self.tools is not None and self.tools.active else None
        return ChoicePipeline(StreamPostprocessor(config), config.template.reply_prefix, self.reasoning,
                              self.inside, parser)

    @property
    def legacy(self) -> bool:
        return bool(self.tools and self.tools.legacy)


def plan_reply(config: ModelConfig, payload: dict[str, Any], params: GenerationParams, prompt: PromptResult,
               info: ModelInfo, tools: ToolRequest | None, reasoning: ReasoningSettings,
               logprobs: int | None) -> ReplyPlan:
    """The grammar that makes the model call (if any), the markers the reply is read by, the
    reasoning block the prompt opened."""
    fmt: ToolFormat = "json"
    if prompt.source == "tokenizer":
        fmt = native_format(info.chat_template) or "json"
    settings = tool_settings(config)
    grammar = tool_grammar(tools, fmt, settings) if tools is not None else None
    sampling = params.sampling
    if tools is not None and tools.active and (payload.get("grammar") or payload.get("response_format")):
        raise InvalidRequest("a request with tools cannot also set grammar or response_format: a call's shape "
                             "comes from the tools (use tool_choice \"none\" to constrain a plain answer)")
    if grammar is not None:
        sampling = dataclasses.replace(sampling, grammar=grammar)
    markers = (MARKERS[fmt] if tools is not None and tools.active else ()) + (reasoning.markers if reasoning.split else ())
    params = dataclasses.replace(params, sampling=sampling, logprobs=logprobs, visible_specials=markers)
    return ReplyPlan(params, reasoning, open_reasoning(prompt.text, reasoning), tools, fmt, settings, logprobs)


def template_kwargs(config: ModelConfig, payload: dict[str, Any], reasoning: ReasoningSettings) -> dict[str, Any]:
    """Variables a GGUF chat template gets beyond the messages (llama-server's chat_template_kwargs)."""
    out: dict[str, Any] = dict(config.chat_template_kwargs or {})
    extra = payload.get("chat_template_kwargs")
    if extra is not None:
        if not isinstance(extra, dict):
            raise InvalidRequest("chat_template_kwargs must be an object")
        out.update(extra)
    if reasoning.effort:
        out.setdefault("reasoning_effort", reasoning.effort)
    if not reasoning.split:
        out.setdefault("enable_thinking", False)
    return out


# ---------------------------------------------------------------- generation routes


@dataclass(frozen=True)
class ChatCall:
    """A chat request as decided before its model is held: the config it runs on, its
    generation settings, and what its reply is read for (tools, reasoning, logprobs)."""

    req: ChatCompletionRequest
    payload: dict[str, Any]
    config: ModelConfig
    n: int
    tools: ToolRequest | None
    reasoning: ReasoningSettings
    logprobs: int | None
    params: GenerationParams


def chat_call(manager: ModelManager, body: dict[str, Any]) -> ChatCall:
    """Everything about a chat request that is checked before a model is loaded for it."""
    req = validate(ChatCompletionRequest, body)
    warn_unknown_fields(body, "chat")
    n = choice_count(req.n)
    payload = req.model_dump(exclude_unset=True)
    config = manager.config_for(req.model)
    tools = tool_request(payload)
    reasoning = reasoning_settings(config, payload)
    logprobs = chat_logprobs(req)
    params = merge_generation_params(config, payload, endpoint="chat")
    check_reply_regexes(config)
    return ChatCall(req, payload, config, n, tools, reasoning, logprobs, params)


def chat_generation(call: ChatCall, models_path: Path, info: ModelInfo) -> tuple[ReplyPlan, GenerateRequest]:
    """The prompt (the held model's own template where the config leaves it to the GGUF) and
    the plan its reply is produced and read by."""
    config, payload = call.config, call.payload
    prompt = build_chat_prompt(config, models_path, payload, tokenizer_template=tokenizer_template(info),
                               template_kwargs=template_kwargs(config, payload, call.reasoning))
    plan = plan_reply(config, payload, call.params, prompt, info, call.tools, call.reasoning, call.logprobs)
    return plan, engine_request(config, prompt, plan.params)


@_route("/chat/completions", "POST")
async def chat_completions(request: Request) -> Response:
    manager: ModelManager = request.app.state.manager
    call = chat_call(manager, await read_json_object(request))
    config, n, logprobs = call.config, call.n, call.logprobs
    reply = ReplyId(new_id("chatcmpl"), now(), call.req.model or config.name)

    async with hold_model(request, manager, config.name) as held:
        plan, generation = chat_generation(call, manager.models_path, held.handle.info)
        choices = choices_of([generation], n)
        if call.req.stream:
            writers = [ChatWriter(reply.id, reply.created, reply.model, plan.pipeline(config), i, logprobs, plan.legacy)
                       for i in range(len(choices))]
            events = stream_choices([held.handle.generate(c) for c in choices], writers, per_prompt=n,
                                    include_usage=include_usage(call.req), report_usage=held.reported)
            return held.stream(events)
        results = await held.collect(choices)

    answers, usages = [], []
    for i, r in enumerate(results):
        answer = ChatAnswer(plan.pipeline(config), logprobs, plan.legacy)
        for d in r.deltas:
            answer.feed(d)
        answers.append(answer.choice(i, r.finished))
        usages.append(answer.pipeline.counted(r.finished.usage))
    usage = held.reported(combined_usage(usages, n))
    return JSONResponse({"id": reply.id, "object": "chat.completion", "created": reply.created, "model": reply.model,
                         "choices": answers, "usage": usage.model_dump(mode="json")})


@_route("/responses", "POST")
async def create_response(request: Request) -> Response:
    """The Responses API, run as a chat request: one answer, its output as items."""
    body = await read_json_object(request)
    store: ResponseStore = request.app.state.responses
    rcall = responses_call(validate(ResponsesRequest, body), store)
    manager: ModelManager = request.app.state.manager
    call = chat_call(manager, rcall.chat_body)
    config = call.config
    sampling = call.params.sampling
    response = response_object(rcall, new_response_id(), now(), rcall.req.model or config.name,
                               sampling.temperature, sampling.top_p)

    def keep(final: dict[str, Any]) -> None:
        if rcall.req.store is not False:
            store.put(StoredResponse(final, rcall.history + writer.assistant_messages()))

    async with hold_model(request, manager, config.name) as held:
        plan, generation = chat_generation(call, manager.models_path, held.handle.info)
        writer = ResponseWriter(response, plan.pipeline(config), rcall.logprobs, keep)
        if rcall.req.stream:
            events = stream_choices([held.handle.generate(generation)], [writer], include_usage=True, done=False,
                                    report_usage=held.reported)
            return held.stream(events)
        (result,) = await held.collect([generation])

    writer.opening()
    for d in result.deltas:
        writer.delta(d)
    writer.finish(result.finished)
    writer.usage(held.reported(writer.pipeline.counted(result.finished.usage)))
    return JSONResponse(writer.final)


@_route("/responses/{response_id}", "GET")
async def get_response(request: Request, response_id: str) -> Response:
    return JSONResponse(request.app.state.responses.get(response_id).response)


@_route("/responses/{response_id}", "DELETE")
async def delete_response(request: Request, response_id: str) -> Response:
    request.app.state.responses.delete(response_id)
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


MAX_COMPLETION_LOGPROBS = 20


@_route("/completions", "POST")
async def completions(request: Request) -> Response:
    body = await read_json_object(request)
    req = validate(CompletionRequest, body)
    warn_unknown_fields(body, "completion")
    n = choice_count(req.n)
    prompts = prompt_list(req.prompt, n)
    payload = req.model_dump(exclude_unset=True)
    if req.logprobs is not None and not 0 <= req.logprobs <= MAX_COMPLETION_LOGPROBS:
        raise InvalidRequest(f"logprobs={req.logprobs}: it must be between 0 and {MAX_COMPLETION_LOGPROBS}")
    manager: ModelManager = request.app.state.manager
    config = manager.config_for(req.model)
    params = merge_generation_params(config, payload, endpoint="completion")
    params = dataclasses.replace(params, logprobs=req.logprobs)
    check_reply_regexes(config)
    reply = ReplyId(new_id("cmpl"), now(), req.model or config.name)
    # LocalAI's order: reply_prefix is part of the model's reply, echo puts the prompt before
    # it, and post-processing sees the result.
    prefixes = [(p if req.echo else "") + config.template.reply_prefix for p in prompts for _ in range(n)]

    def pipeline(i: int) -> ChoicePipeline:
        return ChoicePipeline(StreamPostprocessor(config), prefixes[i])

    def logprobs(i: int) -> CompletionLogprobs | None:
        return CompletionLogprobs(req.logprobs, len(prefixes[i])) if req.logprobs is not None else None

    async with hold_model(request, manager, config.name) as held:
        built = [build_completion_prompt(config, manager.models_path, p, payload) for p in prompts]
        choices = choices_of([engine_request(config, b, params) for b in built], n)
        if req.stream:
            writers = [CompletionWriter(reply.id, reply.created, reply.model, pipeline(i), i, logprobs(i))
                       for i in range(len(choices))]
            events = stream_choices([held.handle.generate(c) for c in choices], writers, per_prompt=n,
                                    include_usage=include_usage(req), report_usage=held.reported)
            return held.stream(events)
        results = await held.collect(choices)

    out = []
    for i, r in enumerate(results):
        pipe, lp = pipeline(i), logprobs(i)
        text = ""
        for d in r.deltas:
            text += "".join(p.text for p in pipe.feed(d.text, d.n_tokens) if isinstance(p, ContentDelta))
            if lp is not None:
                lp.add(d.logprobs)
        text += "".join(p.text for p in pipe.finish() if isinstance(p, ContentDelta))
        out.append({"index": i, "text": text, "logprobs": lp.as_json() if lp is not None else None,
                    "finish_reason": r.finished.reason})
    usage = held.reported(combined_usage([r.finished.usage for r in results], n))
    return JSONResponse({"id": reply.id, "object": "text_completion", "created": reply.created, "model": reply.model,
                         "choices": out, "usage": usage.model_dump(mode="json")})


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
    async with hold_model(request, manager, config.name) as held:
        vectors = await held.handle.embed(texts)
        n_tokens = 0
        for text in texts:
            n_tokens += len(await held.handle.tokenize(text, add_special=True))
        held.reported(Usage(n_tokens, 0))
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
    async with hold_model(request, manager, config.name) as held:
        tokens = await held.handle.tokenize(req.content)
    return JSONResponse(TokenizeResponse(tokens=tokens).model_dump())


@_route("/detokenize", "POST")
async def detokenize(request: Request) -> Response:
    """LocalAI v4's /v1/detokenize; the answer is llama-server's shape ({"content"})."""
    body = await read_json_object(request)
    req = validate(DetokenizeRequest, body)
    manager = request.app.state.manager
    config = manager.config_for(req.model)
    async with hold_model(request, manager, config.name) as held:
        text = await held.handle.detokenize(req.tokens)
    return JSONResponse({"content": text})


# Matched first (each request tries routes in order): the two generation routes, /v1 and bare.
_FIRST = ("/v1/chat/completions", "/v1/completions", "/chat/completions", "/completions")


def _match_order(route: Any) -> int:
    path = getattr(route, "path", None)
    return _FIRST.index(path) if path in _FIRST else len(_FIRST)


router.routes.sort(key=_match_order)
