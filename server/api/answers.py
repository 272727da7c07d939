"""One choice's reply as a client sees it: post-processing, reasoning and tool calls over the engine's text,
written as stream chunks or as one message. Stream and non-stream go through the same pipeline."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

from compat.postprocess import StreamPostprocessor
from compat.reasoning import ReasoningSettings, ReasoningSplitter
from compat.tool_calls import CallArguments, CallStart, ContentDelta, ToolCallParser
from server.api.schemas import UsageInfo
from server.api.streaming import wire_json
from server.engine.types import Finished, TextDelta, TokenLogprob, Usage


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


Piece = Union[ContentDelta, ReasoningDelta, CallStart, CallArguments]


class ChoicePipeline:
    """reply_prefix and the engine's text -> post-processing (cutstrings, trims: LocalAI's
    order) -> reasoning split -> tool-call parsing. Each stage holds back only what it must."""

    def __init__(self, post: StreamPostprocessor, prefix: str = "", reasoning: ReasoningSettings | None = None,
                 inside: str | None = None, tools: ToolCallParser | None = None):
        self._post = post
        self._prefix = prefix
        self._reasoning = ReasoningSplitter(reasoning, inside) if reasoning is not None else None
        self._tools = tools
        # Sampled tokens against the splitter's text: (start, end, tokens) per stretch of text
        # (tokens whose text an earlier stage holds back go with the text once it comes).
        self._token_spans: list[tuple[int, int, int]] = []
        self._tokens_waiting = 0

    @property
    def has_calls(self) -> bool:
        return bool(self._tools and self._tools.calls)

    def feed(self, text: str, n_tokens: int = 1) -> list[Piece]:
        if self._prefix:
            text, self._prefix = self._prefix + text, ""
        return self._stages(self._post.feed(text), final=False, n_tokens=n_tokens)

    def finish(self) -> list[Piece]:
        tail = self._prefix + self._post.finish()
        self._prefix = ""
        return self._stages(tail, final=True)

    @property
    def reasoning_tokens(self) -> int | None:
        """Sampled tokens whose text fell in reasoning blocks (markers included), shared out by
        characters where a delta straddles a marker; None where reasoning is not split. A
        post-processing stage that holds text back (trimsuffix, a cutstring) moves its tokens
        to where the text comes out, so near a marker the count is off by at most that much."""
        splitter = self._reasoning
        if splitter is None or not splitter.settings.split:
            return None
        return round(splitter.weight_inside(self._token_spans))

    def counted(self, usage: Usage) -> Usage:
        """The engine's usage with this reply's reasoning tokens (once the reply is finished)."""
        n = self.reasoning_tokens
        return usage if n is None else dataclasses.replace(usage, reasoning_tokens=min(n, usage.completion_tokens))

    def _stages(self, text: str, final: bool, n_tokens: int = 0) -> list[Piece]:
        out: list[Piece] = []
        content = text
        if self._reasoning is not None:
            self._tokens_waiting += n_tokens
            if text or final:
                start = self._reasoning.fed
                self._token_spans.append((start, start + len(text), self._tokens_waiting))
                self._tokens_waiting = 0
            r, content = self._reasoning.feed(text)
            if final:
                r2, c2 = self._reasoning.finish()
                r, content = r + r2, content + c2
            if r:
                out.append(ReasoningDelta(r))
        if self._tools is None:
            if content:
                out.append(ContentDelta(content))
            return out
        out += self._tools.feed(content) if content else []
        if final:
            out += self._tools.finish()
        return out


def finish_reason(finished: Finished, has_calls: bool, legacy: bool) -> str:
    if finished.reason == "stop" and has_calls:
        return "function_call" if legacy else "tool_calls"
    return finished.reason


# -- chat ------------------------------------------------------------------------------------------


def chat_logprobs(items: tuple[TokenLogprob, ...] | list[TokenLogprob], top: int) -> list[dict]:
    return [{
        "token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes),
        "top_logprobs": [{"token": t, "logprob": v, "bytes": list(b)} for t, b, v in lp.top[:top]],
    } for lp in items]


@dataclass
class ChatWriter:
    """Stream chunks of one chat choice (OpenAI's shapes: a tool call's id, type and name in its
    first chunk, its arguments in pieces after; reasoning as delta.reasoning_content)."""

    id: str
    created: int
    model: str
    pipeline: ChoicePipeline
    index: int = 0
    logprobs: int | None = None  # top_logprobs when the request asked for logprobs
    legacy: bool = False  # functions/function_call: delta.function_call
    _started: bool = False

    @cached_property
    def _frame(self) -> tuple[str, str]:
        head = wire_json({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model})
        return head[:-1] + f',"choices":[{{"index":{self.index},"delta":', "}]}"

    def _chunk(self, delta: dict, *, logprobs: list[dict] | None = None, finish: str | None = None) -> str:
        head, tail = self._frame
        extra = ""
        if logprobs is not None:
            extra += ',"logprobs":' + wire_json({"content": logprobs, "refusal": None})
        return f'{head}{wire_json(delta)}{extra},"finish_reason":{wire_json(finish)}{tail}'

    def opening(self) -> list[str]:
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""},
                            logprobs=[] if self.logprobs is not None else None)]

    def _pieces(self, pieces: list[Piece], lps: tuple[TokenLogprob, ...]) -> list[str]:
        out = []
        pending = chat_logprobs(lps, self.logprobs or 0) if self.logprobs is not None and lps else None
        for p in pieces:
            if isinstance(p, ContentDelta):
                delta: dict = {"content": p.text}
            elif isinstance(p, ReasoningDelta):
                delta = {"reasoning_content": p.text}
            elif isinstance(p, CallStart):
                if self.legacy:
                    delta = {"function_call": {"name": p.name, "arguments": ""}}
                else:
                    delta = {"tool_calls": [{"index": p.index, "id": p.id, "type": "function",
                                             "function": {"name": p.name, "arguments": ""}}]}
            else:
                delta = ({"function_call": {"arguments": p.text}} if self.legacy
                         else {"tool_calls": [{"index": p.index, "function": {"arguments": p.text}}]})
            out.append(self._chunk(delta, logprobs=pending))
            pending = None
        if pending is not None:
            out.append(self._chunk({"content": ""}, logprobs=pending))
        return out

    def delta(self, d: TextDelta) -> list[str]:
        return self._pieces(self.pipeline.feed(d.text, d.n_tokens), d.logprobs)

    def finish(self, finished: Finished) -> list[str]:
        out = self._pieces(self.pipeline.finish(), ())
        out.append(self._chunk({}, finish=finish_reason(finished, self.pipeline.has_calls, self.legacy)))
        return out

    def usage(self, usage: UsageInfo) -> str:
        return wire_json({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                      "choices": [], "usage": usage.model_dump(mode="json")})


@dataclass
class ChatAnswer:
    """A whole chat choice, built by the same pipeline a stream of it goes through."""

    pipeline: ChoicePipeline
    logprobs: int | None = None
    legacy: bool = False
    content: str = ""
    reasoning: str = ""
    calls: list[dict] = field(default_factory=list)
    token_logprobs: list[TokenLogprob] = field(default_factory=list)

    def _take(self, pieces: list[Piece]) -> None:
        for p in pieces:
            if isinstance(p, ContentDelta):
                self.content += p.text
            elif isinstance(p, ReasoningDelta):
                self.reasoning += p.text
            elif isinstance(p, CallStart):
                self.calls.append({"id": p.id, "type": "function", "function": {"name": p.name, "arguments": ""}})
            else:
                self.calls[p.index]["function"]["arguments"] += p.text

    def feed(self, d: TextDelta) -> None:
        self._take(self.pipeline.feed(d.text, d.n_tokens))
        self.token_logprobs.extend(d.logprobs)

    def choice(self, index: int, finished: Finished) -> dict:
        self._take(self.pipeline.finish())
        message: dict[str, Any] = {"role": "assistant", "content": self.content if self.content or not self.calls else None}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.calls:
            if self.legacy:
                message["function_call"] = self.calls[0]["function"]
            else:
                message["tool_calls"] = self.calls
        out: dict[str, Any] = {"index": index, "message": message,
                               "finish_reason": finish_reason(finished, bool(self.calls), self.legacy)}
        out["logprobs"] = ({"content": chat_logprobs(self.token_logprobs, self.logprobs or 0), "refusal": None}
                           if self.logprobs is not None else None)
        return out


# -- completions ------------------------------------------------------------------------------------


@dataclass
class CompletionLogprobs:
    """The legacy completions shape: tokens, token_logprobs, top_logprobs, text_offset."""

    top: int
    offset: int = 0  # characters before the first token (an echoed prompt, reply_prefix)
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[str, float]] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)

    def add(self, items: tuple[TokenLogprob, ...]) -> dict | None:
        if not items:
            return None
        start = len(self.tokens)
        for lp in items:
            self.tokens.append(lp.token)
            self.token_logprobs.append(lp.logprob)
            self.top_logprobs.append({t: v for t, _, v in lp.top[: self.top]})
            self.text_offset.append(self.offset)
            self.offset += len(lp.token)
        return self.as_json(start)

    def as_json(self, start: int = 0) -> dict:
        return {"tokens": self.tokens[start:], "token_logprobs": self.token_logprobs[start:],
                "top_logprobs": self.top_logprobs[start:], "text_offset": self.text_offset[start:]}


@dataclass
class CompletionWriter:
    id: str
    created: int
    model: str
    pipeline: ChoicePipeline
    index: int = 0
    logprobs: CompletionLogprobs | None = None

    @cached_property
    def _frame(self) -> tuple[str, str]:
        head = wire_json({"id": self.id, "object": "text_completion", "created": self.created, "model": self.model})
        return head[:-1] + f',"choices":[{{"index":{self.index},"text":', "}]}"

    def _chunk(self, text: str, lp: dict | None = None, finish: str | None = None) -> str:
        head, tail = self._frame
        return f'{head}{wire_json(text)},"logprobs":{wire_json(lp)},"finish_reason":{wire_json(finish)}{tail}'

    def opening(self) -> list[str]:
        return []

    def delta(self, d: TextDelta) -> list[str]:
        text = "".join(p.text for p in self.pipeline.feed(d.text, d.n_tokens) if isinstance(p, ContentDelta))
        lp = self.logprobs.add(d.logprobs) if self.logprobs is not None else None
        return [self._chunk(text, lp)] if text or lp else []

    def finish(self, finished: Finished) -> list[str]:
        text = "".join(p.text for p in self.pipeline.finish() if isinstance(p, ContentDelta))
        out = [self._chunk(text)] if text else []
        out.append(self._chunk("", finish=finished.reason))
        return out

    def usage(self, usage: UsageInfo) -> str:
        return wire_json({"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                      "choices": [], "usage": usage.model_dump(mode="json")})
