"""The Responses API: its request as a chat request, the chat reply as its output items and stream
events, and the bounded memory behind previous_response_id."""
from __future__ import annotations

import copy
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from compat.tool_calls import CallArguments, CallStart, ContentDelta
from server.api.answers import ChoicePipeline, ReasoningDelta, finish_reason
from server.api.generation import NamedEvent
from server.api.schemas import ResponsesRequest, UsageInfo
from server.api.streaming import wire_json
from server.engine.types import Finished, TextDelta, TokenLogprob
from server.errors import InvalidRequest, LlamaslotsError

LOGPROBS_INCLUDE = "message.output_text.logprobs"
# Chat spellings of what the Responses API names otherwise: sent here, they would quietly
# compete with the Responses field.
CHAT_ONLY_FIELDS = {
    "messages": "input", "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format", "logprobs": f'include: ["{LOGPROBS_INCLUDE}"]', "functions": "tools",
    "function_call": "tool_choice", "reasoning_effort": "reasoning.effort", "n": None,
}
VERBOSITY = (None, "medium")


class ResponseNotFound(LlamaslotsError):
    status = 404
    type = "invalid_request_error"

    def __init__(self, response_id: str):
        super().__init__(f"response {response_id!r} not found: this server keeps the last responses in memory "
                         f"(store: true), and not across restarts")


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def new_response_id() -> str:
    return _id("resp")


# -- memory ------------------------------------------------------------------------------------------


@dataclass
class StoredResponse:
    response: dict[str, Any]
    # The conversation as chat messages, this response's output included: what a request
    # naming it as previous_response_id continues (instructions are not carried over, as in OpenAI).
    messages: list[dict[str, Any]]


class ResponseStore:
    """The last `capacity` stored responses, oldest forgotten first."""

    def __init__(self, capacity: int = 512):
        self.capacity = capacity
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, stored: StoredResponse) -> None:
        rid = stored.response["id"]
        self._items[rid] = stored
        self._items.move_to_end(rid)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse:
        stored = self._items.get(response_id)
        if stored is None:
            raise ResponseNotFound(response_id)
        self._items.move_to_end(response_id)
        return stored

    def delete(self, response_id: str) -> None:
        if self._items.pop(response_id, None) is None:
            raise ResponseNotFound(response_id)


# -- request -----------------------------------------------------------------------------------------


@dataclass
class ResponsesCall:
    """A Responses request as the chat request it runs as, and what its answer echoes back."""

    req: ResponsesRequest
    chat_body: dict[str, Any]
    history: list[dict[str, Any]]  # previous conversation + this input, as chat messages
    logprobs: int | None


def _unsupported(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{name}: {why}")


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content as chat content: text parts only (this server runs text models)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind in ("input_image", "input_file", "input_audio"):
            raise _unsupported(f"{where}.content[{j}]", f"{kind} parts are not supported here; send text")
        else:
            raise InvalidRequest(f"{where}.content[{j}] is not a text part (type {kind!r})")
    return parts


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    parts = _parts(output, where)
    return parts if isinstance(parts, str) else "".join(p["text"] for p in parts)


def input_messages(input_: str | list[Any]) -> list[dict[str, Any]]:
    """Input items as chat messages: a function_call joins the assistant message before it (as
    one assistant turn with tool_calls), a function_call_output becomes a `tool` message.
    Reasoning items of earlier turns are left out, as chat templates leave them out."""
    if isinstance(input_, str):
        return [{"role": "user", "content": input_}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(input_):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequest(f"{where}.role must be user, assistant, system or developer, got {role!r}")
            out.append({"role": "system" if role == "developer" else role,
                        "content": _parts(item.get("content"), where)})
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise InvalidRequest(f"{where}.{key} must be a string")
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise InvalidRequest(f"{where}.call_id must be a string")
            out.append({"role": "tool", "tool_call_id": item["call_id"],
                        "content": _output_text(item.get("output"), where + ".output")})
        elif kind == "reasoning":
            continue
        elif kind == "item_reference":
            raise _unsupported(where, "item_reference is not supported here; send the item itself, "
                                      "or continue a stored response with previous_response_id")
        else:
            raise _unsupported(where, f"input items of type {kind!r} are not supported here "
                                      f"(message, function_call, function_call_output, reasoning are)")
    return out


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Responses API's flat function tools in chat's nested shape."""
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _unsupported(f"tools[{i}]", f"tools of type {tool.get('type')!r} are not supported here; "
                                              f"only function tools are")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"tools[{i}].name must be a non-empty string")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice  # auto, none, required: checked by the chat request
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _unsupported("tool_choice", f"{choice!r} is not supported here: use auto, none, required "
                                      f'or {{"type": "function", "name": ...}}')


def chat_response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    if text.get("verbosity") not in VERBOSITY:
        raise _unsupported("text.verbosity", f"{text['verbosity']!r} is not supported here (only medium): "
                                             f"a local model has no verbosity control")
    fmt = text.get("format")
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(f"text.format.type must be text, json_object or json_schema, got {fmt.get('type')!r}")


def responses_call(req: ResponsesRequest, store: ResponseStore) -> ResponsesCall:
    """Checks what this server cannot do (a clear 400, not a quiet downgrade) and builds the chat request."""
    if req.background:
        raise _unsupported("background", "background responses are not supported here; stream instead")
    for name in ("conversation", "prompt", "max_tool_calls"):
        if getattr(req, name) is not None:
            raise _unsupported(name, "not supported here")
    if req.truncation not in (None, "disabled"):
        raise _unsupported("truncation", f"{req.truncation!r} is not supported here: nothing is dropped from "
                                         f"the input; a conversation longer than the context is an error")
    extra = dict(req.model_extra or {})
    for name, instead in CHAT_ONLY_FIELDS.items():
        if name in extra:
            raise InvalidRequest(f"{name} is a chat completions field; the Responses API "
                                 + (f"takes {instead}" if instead else "makes one answer"))
    includes = req.include or []
    for item in includes:
        if item != LOGPROBS_INCLUDE:
            raise _unsupported("include", f"{item!r} is not available here (only {LOGPROBS_INCLUDE!r})")
    history = copy.deepcopy(store.get(req.previous_response_id).messages) if req.previous_response_id else []
    history += input_messages(req.input)
    if not history:
        raise InvalidRequest("input: the list is empty; send at least one message")
    messages = ([{"role": "system", "content": req.instructions}] if req.instructions else []) + history
    body: dict[str, Any] = {**extra, "messages": messages}
    if req.model is not None:
        body["model"] = req.model
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                         ("top_p", "top_p"), ("parallel_tool_calls", "parallel_tool_calls")):
        if getattr(req, ours) is not None:
            body[theirs] = getattr(req, ours)
    if req.tools:
        body["tools"] = chat_tools(req.tools)
    if req.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(req.tool_choice)
    if req.text:
        fmt = chat_response_format(req.text)
        if fmt is not None:
            body["response_format"] = fmt
    effort = (req.reasoning or {}).get("effort")
    if effort is not None:
        body["reasoning_effort"] = effort
    logprobs = None
    if LOGPROBS_INCLUDE in includes or req.top_logprobs:
        logprobs = req.top_logprobs or 0
        body["logprobs"] = True
        body["top_logprobs"] = logprobs
    return ResponsesCall(req, body, history, logprobs)


# -- answer ------------------------------------------------------------------------------------------


def output_logprobs(items: list[TokenLogprob] | tuple[TokenLogprob, ...], top: int) -> list[dict]:
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes),
             "top_logprobs": [{"token": t, "logprob": v, "bytes": list(b)} for t, b, v in lp.top[:top]]}
            for lp in items]


def response_usage(usage: UsageInfo) -> dict[str, Any]:
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    details = usage.completion_tokens_details
    return {
        "input_tokens": usage.prompt_tokens,
        # Every prompt token not found in a slot's cache is decoded and stays cached for the next turn.
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": usage.prompt_tokens - cached},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": details.reasoning_tokens if details else 0},
        "total_tokens": usage.total_tokens,
    }


@dataclass
class ResponseWriter:
    """One response's output items and stream events, in the order the reply produces them:
    a reasoning item, a message, function calls (a new item each time the kind changes).

    Non-streamed answers are built by the same writer, with the events thrown away, so both
    say the same thing. `on_done` gets the final response (to keep it for previous_response_id)."""

    response: dict[str, Any]  # the Response object without output, status and usage
    pipeline: ChoicePipeline
    logprobs: int | None = None
    on_done: Callable[[dict[str, Any]], None] | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    _seq: int = 0
    _open: int | None = None  # output index of the item still receiving deltas
    _calls: dict[int, int] = field(default_factory=dict)  # call index -> output index
    _pending: list[TokenLogprob] = field(default_factory=list)
    _status: str = "in_progress"
    _incomplete: dict[str, str] | None = None
    final: dict[str, Any] | None = None  # the whole response, once usage() has run

    def _event(self, kind: str, **fields: Any) -> NamedEvent:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return NamedEvent(kind, wire_json(data))

    def snapshot(self, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**self.response, "status": self._status, "incomplete_details": self._incomplete,
                "output": copy.deepcopy(self.output), "usage": usage}

    def opening(self) -> list[NamedEvent]:
        return [self._event("response.created", response=self.snapshot()),
                self._event("response.in_progress", response=self.snapshot())]

    # Items open and close as the reply goes from reasoning to text to calls.

    def _close(self) -> list[NamedEvent]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        item = self.output[index]
        item["status"] = "completed"
        out = []
        if item["type"] == "message":
            part = item["content"][0]
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out += [self._event("response.output_text.done", **common, text=part["text"], logprobs=part["logprobs"]),
                    self._event("response.content_part.done", **common, part=part)]
        elif item["type"] == "reasoning":
            text = item["content"][0]["text"] if item["content"] else ""
            out.append(self._event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=text))
        else:
            out.append(self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                   name=item["name"], arguments=item["arguments"]))
        out.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
        return out

    def _start(self, item: dict[str, Any]) -> list[NamedEvent]:
        out = self._close()
        self.output.append(item)
        self._open = len(self.output) - 1
        out.append(self._event("response.output_item.added", output_index=self._open, item=copy.deepcopy(item)))
        return out

    def _text(self, text: str) -> list[NamedEvent]:
        out: list[NamedEvent] = []
        if self._open is None or self.output[self._open]["type"] != "message":
            out += self._start({"id": _id("msg"), "type": "message", "status": "in_progress", "role": "assistant",
                                "content": []})
            item = self.output[self._open]  # type: ignore[index]
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(self._event("response.content_part.added", item_id=item["id"], output_index=self._open,
                                   content_index=0, part=copy.deepcopy(part)))
            item["content"].append(part)
        item = self.output[self._open]  # type: ignore[index]
        part = item["content"][0]
        part["text"] += text
        # Tokens still pending that produced no text (a reasoning end marker) lead the ones that did.
        wanted = text.strip()
        while len(self._pending) > 1 and wanted in "".join(lp.token for lp in self._pending[1:]):
            self._pending.pop(0)
        lps = output_logprobs(self._pending, self.logprobs or 0) if self.logprobs is not None else []
        self._pending = []
        part["logprobs"] += lps
        out.append(self._event("response.output_text.delta", item_id=item["id"], output_index=self._open,
                               content_index=0, delta=text, logprobs=lps))
        return out

    def _reasoning(self, text: str) -> list[NamedEvent]:
        out: list[NamedEvent] = []
        if self._open is None or self.output[self._open]["type"] != "reasoning":
            out += self._start({"id": _id("rs"), "type": "reasoning", "summary": [], "content": [],
                                "status": "in_progress"})
        item = self.output[self._open]  # type: ignore[index]
        if not item["content"]:
            item["content"].append({"type": "reasoning_text", "text": ""})
        item["content"][0]["text"] += text
        out.append(self._event("response.reasoning_text.delta", item_id=item["id"], output_index=self._open,
                               content_index=0, delta=text))
        return out

    def _pieces(self, pieces: list[Any]) -> list[NamedEvent]:
        out: list[NamedEvent] = []
        for p in pieces:
            if isinstance(p, ContentDelta):
                out += self._text(p.text)
                continue
            self._pending = []  # those tokens went to reasoning or a call, not to the text
            if isinstance(p, ReasoningDelta):
                out += self._reasoning(p.text)
            elif isinstance(p, CallStart):
                out += self._start({"id": _id("fc"), "type": "function_call", "status": "in_progress",
                                    "call_id": p.id, "name": p.name, "arguments": ""})
                self._calls[p.index] = len(self.output) - 1
            elif isinstance(p, CallArguments):
                index = self._calls[p.index]
                item = self.output[index]
                item["arguments"] += p.text
                out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                       output_index=index, delta=p.text))
        return out

    def delta(self, d: TextDelta) -> list[NamedEvent]:
        self._pending += d.logprobs
        return self._pieces(self.pipeline.feed(d.text, d.n_tokens))

    def finish(self, finished: Finished) -> list[NamedEvent]:
        out = self._pieces(self.pipeline.finish()) + self._close()
        if finish_reason(finished, self.pipeline.has_calls, False) == "length":
            self._status, self._incomplete = "incomplete", {"reason": "max_output_tokens"}
        else:
            self._status = "completed"
        return out

    def usage(self, usage: UsageInfo) -> NamedEvent:
        final = self.final = self.snapshot(response_usage(usage))
        if self.on_done is not None:
            self.on_done(final)
        kind = "response.incomplete" if self._status == "incomplete" else "response.completed"
        return self._event(kind, response=final)

    def assistant_messages(self) -> list[dict[str, Any]]:
        """This response's output as the chat message the next turn's prompt shows."""
        text = "".join(i["content"][0]["text"] for i in self.output if i["type"] == "message" and i["content"])
        calls = [{"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
                 for i in self.output if i["type"] == "function_call"]
        if not text and not calls:
            return [{"role": "assistant", "content": ""}]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        return [message]


def response_object(call: ResponsesCall, response_id: str, created: int, model: str, temperature: float | None,
                    top_p: float | None) -> dict[str, Any]:
    """The Response fields that echo the request (as OpenAI's do), before output and usage."""
    req = call.req
    return {
        "id": response_id, "object": "response", "created_at": created, "model": model, "error": None,
        "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
        "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
        "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": (req.reasoning or {}).get("effort"), "summary": (req.reasoning or {}).get("summary")},
        "store": req.store is not False, "temperature": temperature, "top_p": top_p,
        "text": {"format": (req.text or {}).get("format") or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": req.tools or [], "top_logprobs": call.logprobs or 0, "truncation": "disabled",
        "user": req.user, "metadata": req.metadata or {}, "background": False,
        "service_tier": req.service_tier or "default",
    }
