"""Pydantic models of the OpenAI/LocalAI request bodies we accept and the responses we send."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_serializer

# Requests keep unknown fields (extra="allow"): LocalAI ignores them, we ignore them too but
# log them with a did-you-mean, and the request dict handed to compat keeps every key.


class _Request(BaseModel):
    # strict: "10" is not a number and 1 not a boolean (Go's decoder in LocalAI refuses them too).
    model_config = ConfigDict(extra="allow", strict=True)


# Bounds a client can break the sampler with are checked here, with messages naming the field.
# Floats must be finite (NaN and Infinity are also refused by the JSON decoder).
Finite = Annotated[float, Field(allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)]  # OpenAI's range
# -1 is llama.cpp's "off"/"no limit"/"random"; other negatives mean nothing.
Count = Annotated[int, Field(ge=-1)]
# Stop strings: each is matched against the text's tail every step; these bounds keep that cheap.
MAX_STOP_STRINGS = 64
MAX_STOP_LENGTH = 512
StopString = Annotated[str, Field(min_length=1, max_length=MAX_STOP_LENGTH)]
Stop = Union[StopString, Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)], None]


class StreamOptions(_Request):
    include_usage: bool = False


class ChatMessage(_Request):
    role: str
    # A string, a list of parts ({"type": "text", "text": ...}, media parts) or null.
    content: Union[str, list[dict[str, Any]], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[dict[str, Any]]] = None
    function_call: Optional[dict[str, Any]] = None
    tool_call_id: Optional[str] = None


class _GenerationRequest(_Request):
    """Fields shared by chat and text completions (OpenAI + LocalAI's PredictionOptions)."""

    model: Optional[str] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    n: Optional[int] = None  # range checked by the routes, with a message that says it

    temperature: Optional[NonNegative] = None
    top_p: Optional[Probability] = None
    top_k: Optional[Count] = None
    min_p: Optional[Probability] = None
    typical_p: Optional[Probability] = None
    tfz: Optional[Probability] = None
    repeat_penalty: Optional[NonNegative] = None
    repeat_last_n: Optional[Count] = None
    frequency_penalty: Optional[Penalty] = None
    presence_penalty: Optional[Penalty] = None
    seed: Optional[Annotated[int, Field(ge=-1, le=2**64 - 1)]] = None
    stop: Stop = None
    # JSON object keys are strings; token ids arrive as "123". OpenAI's range of a bias.
    logit_bias: Optional[dict[str, Annotated[float, Field(ge=-100.0, le=100.0, allow_inf_nan=False)]]] = None
    ignore_eos: Optional[bool] = None
    # 0 and llama.cpp's -1 mean "no limit", as in LocalAI.
    max_tokens: Optional[Count] = None
    max_completion_tokens: Optional[Count] = None
    grammar: Optional[str] = None
    response_format: Optional[dict[str, Any]] = None
    mirostat: Optional[Annotated[int, Field(ge=0, le=2)]] = None
    mirostat_tau: Optional[NonNegative] = None
    mirostat_eta: Optional[NonNegative] = None
    n_keep: Optional[Count] = None
    echo: Optional[bool] = None
    user: Optional[str] = None


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: Optional[list[dict[str, Any]]] = None
    tool_choice: Union[str, dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None
    functions: Optional[list[dict[str, Any]]] = None
    function_call: Union[str, dict[str, Any], None] = None
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = None
    reasoning_effort: Optional[str] = None
    chat_template_kwargs: Optional[dict[str, Any]] = None


class ResponsesRequest(_Request):
    """POST /v1/responses. Fields beyond these (LocalAI's sampling knobs: top_k, seed, ...)
    pass on to the chat request it becomes."""

    model: Optional[str] = None
    input: Union[str, list[Any]]
    instructions: Optional[str] = None
    max_output_tokens: Optional[Annotated[int, Field(ge=1)]] = None
    temperature: Optional[NonNegative] = None
    top_p: Optional[Probability] = None
    tools: Optional[list[dict[str, Any]]] = None
    tool_choice: Union[str, dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None
    stream: bool = False
    stream_options: Optional[dict[str, Any]] = None
    previous_response_id: Optional[str] = None
    store: Optional[bool] = None
    text: Optional[dict[str, Any]] = None
    reasoning: Optional[dict[str, Any]] = None
    top_logprobs: Optional[int] = None
    include: Optional[list[str]] = None
    truncation: Optional[str] = None
    metadata: Optional[dict[str, str]] = None
    user: Optional[str] = None
    service_tier: Optional[str] = None
    prompt_cache_key: Optional[str] = None
    safety_identifier: Optional[str] = None
    background: Optional[bool] = None
    conversation: Any = None
    prompt: Any = None
    max_tool_calls: Optional[int] = None


class CompletionRequest(_GenerationRequest):
    # One prompt per request: a string or a one-element list of strings.
    prompt: Union[str, list[str]]
    logprobs: Optional[int] = None


class EmbeddingRequest(_Request):
    model: Optional[str] = None
    input: Union[str, list[str]]
    encoding_format: Literal["float", "base64"] = "float"
    user: Optional[str] = None


class TokenizeRequest(_Request):
    model: Optional[str] = None
    content: str


class DetokenizeRequest(_Request):
    model: Optional[str] = None
    tokens: list[int]


# Responses: extra="forbid" keeps our own output honest.


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptTokensDetails(_Response):
    cached_tokens: int = 0


class CompletionTokensDetails(_Response):
    reasoning_tokens: int = 0


class UsageInfo(_Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: Optional[PromptTokensDetails] = None
    # Only where the reply's reasoning is split from its content (OpenAI's field; vLLM and
    # LightLLM report it the same way).
    completion_tokens_details: Optional[CompletionTokensDetails] = None

    @model_serializer(mode="wrap")
    def _omit_absent_details(self, handler: Any) -> dict[str, Any]:
        # Absent, not null, where there is no count (every answer without a reasoning split).
        out = handler(self)
        if out.get("completion_tokens_details") is None:
            out.pop("completion_tokens_details", None)
        return out


class AssistantMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(_Response):
    index: int = 0
    message: AssistantMessage
    finish_reason: Optional[str]


class ChatCompletion(_Response):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo


class ChunkDelta(_Response):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None


class ChatChunkChoice(_Response):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Optional[str] = None


class ChatCompletionChunk(_Response):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Optional[UsageInfo] = None


class CompletionChoice(_Response):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: Optional[str] = None


class Completion(_Response):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Optional[UsageInfo] = None


class EmbeddingData(_Response):
    object: Literal["embedding"] = "embedding"
    index: int
    # A list of floats, or base64 of little-endian float32 when encoding_format="base64".
    embedding: Union[list[float], str]


class EmbeddingUsage(_Response):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Response):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class ModelCard(_Response):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "llamaslots"


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TokenizeResponse(_Response):
    tokens: list[int]
