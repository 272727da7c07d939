"""Tool calls: what a request asks for (tools, tool_choice), the grammar that makes a model call, and
the calls in its reply (LocalAI's JSON way from the `function:` config, or a GGUF template's native
syntax: Hermes/Qwen <tool_call>, Llama 3.x JSON, Mistral [TOOL_CALLS]), parsed whole or streamed.

A whole reply is parsed by streaming it through the same parser, so a stream and a non-stream
answer never disagree.
"""
from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from compat.chat_request import function_mode
from compat.errors import RequestError
from compat.gotemplate import goregex
from compat.json_schema_grammar import GrammarBuilder, SchemaGrammarError, _literal
from compat.prompt_data import NO_ACTION_DESCRIPTION, NO_ACTION_NAME

Mode = Literal["none", "auto", "required", "named"]
Format = Literal["json", "hermes", "llama3", "mistral"]



# -- the request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: Any = None  # a JSON schema, or None (any arguments object)
    strict: bool = False


@dataclass(frozen=True)
class ToolRequest:
    """The tools of a chat request and how the model may use them."""

    tools: tuple[Tool, ...]
    mode: Mode
    name: str = ""  # the function a "named" choice forces
    parallel: bool = True  # parallel_tool_calls
    # The request used the legacy `functions` / `function_call` (the answer is message.function_call).
    legacy: bool = False

    @property
    def active(self) -> bool:
        """Whether calls are made and parsed (tool_choice none: the tools only reach the prompt)."""
        return self.mode != "none" and bool(self.tools)


def _tool(raw: Any, where: str) -> Tool:
    if not isinstance(raw, dict):
        raise RequestError(f"{where} must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.name must be a non-empty string")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", name):
        raise RequestError(f"{where}.name {name!r}: use letters, digits, '_', '.' and '-' (at most 128)")
    params = raw.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise RequestError(f"{where}.parameters must be a JSON schema object")
    desc = raw.get("description") or ""
    if not isinstance(desc, str):
        raise RequestError(f"{where}.description must be a string")
    return Tool(name, desc, params, raw.get("strict") is True)


def tool_request(body: dict) -> ToolRequest | None:
    """The request's tools and choice, checked; None when it has none. A choice the tools cannot
    satisfy (a named function that is not there, `required` without tools) is a RequestError.

    The choice is read by compat.chat_request.function_mode, the one decoder of tool_choice and
    function_call, which the prompt is built from too: the grammar and the prompt never disagree
    about which function is asked for."""
    tools_raw, functions_raw = body.get("tools"), body.get("functions")
    mode, name = _choice(body)
    if tools_raw is None and functions_raw is None:
        if mode not in ("none", "auto"):
            raise RequestError(f"{_choice_field(body)} asks for a tool call, but the request has no tools")
        return None
    tools: list[Tool] = []
    if tools_raw is not None:
        if not isinstance(tools_raw, list):
            raise RequestError("tools must be a list")
        for i, t in enumerate(tools_raw):
            if not isinstance(t, dict) or t.get("type", "function") != "function":
                raise RequestError(f"tools[{i}]: only tools of type \"function\" are supported")
            tools.append(_tool(t.get("function"), f"tools[{i}].function"))
    legacy = functions_raw is not None and tools_raw is None
    if functions_raw is not None:
        if not isinstance(functions_raw, list):
            raise RequestError("functions must be a list")
        tools += [_tool(f, f"functions[{i}]") for i, f in enumerate(functions_raw)]
    names = [t.name for t in tools]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RequestError(f"tools: the name {sorted(dup)[0]!r} is used twice")
    if mode in ("required", "named") and not tools:
        raise RequestError(f"{_choice_field(body)} asks for a tool call, but the request's tool list is empty")
    if mode == "named" and name not in names:
        raise RequestError(f"{_choice_field(body)} names the function {name!r}, which is not in the request's "
                           f"tools ({', '.join(names) or 'none'})")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise RequestError("parallel_tool_calls must be true or false")
    return ToolRequest(tuple(tools), mode, name, parallel, legacy)


def _choice_field(body: dict) -> str:
    """The field that decides the choice, for error messages: tool_choice overrides function_call
    unless it is empty or "auto" (LocalAI's order)."""
    return "tool_choice" if body.get("tool_choice") not in (None, "", "auto") else "function_call"


def _choice(body: dict) -> tuple[Mode, str]:
    """function_mode's reading of the choice, as a Mode; what it cannot read is refused here
    (LocalAI would ignore it or pass an unknown mode to the template)."""
    chosen = function_mode(body)
    if chosen.name:
        return "named", chosen.name
    if chosen.mode in ("", "auto"):
        raw = body.get(_choice_field(body))
        if raw is None or raw in ("", "auto"):
            return "auto", ""
        # An object (or LocalAI's JSON-string form of one) that names no function.
    elif chosen.mode in ("none", "required"):
        return chosen.mode, ""  # type: ignore[return-value]
    field_name = _choice_field(body)
    raise RequestError(f"{field_name} must be \"auto\", \"none\", \"required\" or "
                       "{\"type\": \"function\", \"function\": {\"name\": ...}}, got "
                       f"{json.dumps(body.get(field_name))[:200]}")


# -- the model's settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSettings:
    """LocalAI's `function:` block, as this server applies it."""

    grammar: bool = True  # grammar.disable: no grammar (a strict function still gets one)
    parallel_calls: bool = False
    mixed_mode: bool = False
    no_mixed_free_string: bool = False
    disable_parallel_new_lines: bool = False
    prefix: str = ""
    expect_strings_after_json: bool = False
    # Key order of a call object; LocalAI sorts unlisted keys alphabetically (arguments first),
    # this server puts the name first so a stream can announce the call before its arguments.
    properties_order: tuple[str, ...] = ()
    schema_type: str = "json"  # or "llama3.1": <function=NAME>{...}</function>
    name_key: str = "name"
    arguments_key: str = "arguments"
    no_action: bool = True
    no_action_name: str = NO_ACTION_NAME
    no_action_description: str = NO_ACTION_DESCRIPTION
    response_regex: tuple[str, ...] = ()
    json_regex_match: tuple[str, ...] = ()
    argument_regex: tuple[str, ...] = ()
    argument_regex_key: str = "key"
    argument_regex_value: str = "value"
    replace_function_results: tuple[tuple[str, str], ...] = ()
    replace_llm_results: tuple[tuple[str, str], ...] = ()
    capture_llm_results: tuple[str, ...] = ()
    automatic_parsing_fallback: bool = False

    @property
    def regex_parsing(self) -> bool:
        """Parsing rules that only a whole reply can be run through."""
        return bool(self.response_regex or self.json_regex_match or self.argument_regex
                    or self.replace_function_results or self.replace_llm_results or self.capture_llm_results)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for item in value or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out.append((item["key"], str(item.get("value") or "")))
    return tuple(out)


def tool_settings(config: Any) -> ToolSettings:
    fn = getattr(config, "function", None)
    if fn is None:
        return ToolSettings()
    g = fn.grammar
    order = tuple(k for k in (g.properties_order or "").split(",") if k)
    return ToolSettings(
        grammar=not g.disable, parallel_calls=g.parallel_calls, mixed_mode=g.mixed_mode,
        no_mixed_free_string=g.no_mixed_free_string, disable_parallel_new_lines=g.disable_parallel_new_lines,
        prefix=g.prefix or "", expect_strings_after_json=g.expect_strings_after_json, properties_order=order,
        schema_type="llama3.1" if g.schema_type == "llama3.1" else "json",
        name_key=fn.function_name_key or "name", arguments_key=fn.function_arguments_key or "arguments",
        no_action=not fn.disable_no_action, no_action_name=fn.no_action_function_name or NO_ACTION_NAME,
        no_action_description=fn.no_action_description_name or NO_ACTION_DESCRIPTION,
        response_regex=_strings(fn.response_regex), json_regex_match=_strings(fn.json_regex_match),
        argument_regex=_strings(fn.argument_regex), argument_regex_key=fn.argument_regex_key_name or "key",
        argument_regex_value=fn.argument_regex_value_name or "value",
        replace_function_results=_pairs(fn.replace_function_results),
        replace_llm_results=_pairs(fn.replace_llm_results), capture_llm_results=_strings(fn.capture_llm_results),
        automatic_parsing_fallback=fn.automatic_tool_parsing_fallback,
    )


# The `function:` fields that hold Go regexps (pairs: the regexp is the `key`).
REGEX_FIELDS = ("response_regex", "json_regex_match", "argument_regex", "capture_llm_results")
REGEX_PAIR_FIELDS = ("replace_function_results", "replace_llm_results")


def validate_tool_regexes(config: Any) -> list[tuple[str, int, goregex.GoRegexError]]:
    """(field, index, error) for each `function:` regexp Go would refuse or this server cannot
    reproduce. LocalAI compiles them with regexp.MustCompile when a reply is parsed, and dies."""
    fn = getattr(config, "function", None)
    if fn is None:
        return []
    problems = []
    for key in REGEX_FIELDS + REGEX_PAIR_FIELDS:
        value = getattr(fn, key)
        patterns = [k for k, _ in _pairs(value)] if key in REGEX_PAIR_FIELDS else list(_strings(value))
        for i, pattern in enumerate(patterns):
            try:
                goregex.compile(pattern)
            except goregex.GoRegexError as e:
                problems.append((f"function.{key}", i, e))
    return problems


def native_format(chat_template: str | None) -> Format | None:
    """The tool-call syntax a GGUF chat template teaches its model (llama.cpp's detection)."""
    if not chat_template:
        return None
    if "<tool_call>" in chat_template:
        return "hermes"
    if "[TOOL_CALLS]" in chat_template:
        return "mistral"
    if "<|python_tag|>" in chat_template or ("<|start_header_id|>" in chat_template and "ipython" in chat_template):
        return "llama3"
    return None


# Marker texts per format: the engine renders them even when they are control tokens.
MARKERS: dict[str, tuple[str, ...]] = {
    "hermes": ("<tool_call>", "</tool_call>"),
    "mistral": ("[TOOL_CALLS]",),
    "llama3": ("<|python_tag|>",),
    "json": (),
}


# -- the grammar ----------------------------------------------------------------------------------


def _object_rule(b: GrammarBuilder, keys: list[tuple[str, str]], hint: str) -> str:
    parts = [f"{_literal(json.dumps(k))} ws \":\" ws {v}" for k, v in keys]
    return b.rule(hint, '"{" ws ' + ' "," ws '.join(parts) + ' "}" ws')


def _ordered(settings: ToolSettings, keys: dict[str, str]) -> list[tuple[str, str]]:
    order = list(settings.properties_order) or [settings.name_key, settings.arguments_key]
    listed = [(k, keys[k]) for k in order if k in keys]
    rest = sorted((k, v) for k, v in keys.items() if k not in order)
    return listed + rest


def tool_grammar(req: ToolRequest, fmt: Format, settings: ToolSettings) -> str | None:
    """A GBNF grammar for the reply, or None when the model writes freely (auto in a native
    format, grammar disabled, tool_choice none)."""
    if not req.active:
        return None
    forced = req.mode in ("required", "named")
    strict = any(t.strict for t in req.tools)
    if not (settings.grammar or strict):
        return None
    if fmt != "json" and not forced:
        return None  # the model knows its own syntax; the reply is parsed
    tools = [t for t in req.tools if req.mode != "named" or t.name == req.name]
    b = GrammarBuilder()
    b.primitive("ws")
    args_key = "parameters" if fmt == "llama3" else settings.arguments_key
    name_key = "name" if fmt != "json" else settings.name_key
    calls = []
    try:
        for i, t in enumerate(tools):
            args = b.value(t.parameters if t.parameters is not None else {"type": "object"},
                           f"#/tools/{i}/parameters")
            if fmt == "json" and settings.schema_type == "llama3.1":
                calls.append(b.rule(f"call-{t.name}", f'"<function=" {_literal(t.name)} ">" {args} "</function>" ws'))
                continue
            keys = {name_key: _literal(json.dumps(t.name)) + " ws", args_key: args}
            calls.append(_object_rule(b, _ordered(settings, keys) if fmt == "json" else list(keys.items()),
                                      f"call-{t.name}"))
        if fmt == "json" and not forced and settings.no_action:
            msg = b.value({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
                          "#/no-action")
            keys = {name_key: _literal(json.dumps(settings.no_action_name)) + " ws", args_key: msg}
            calls.append(_object_rule(b, _ordered(settings, keys), "call-no-action"))
    except SchemaGrammarError as exc:
        raise RequestError(f"tools: {exc}") from None
    call = b.rule("call", " | ".join(calls))
    parallel = req.parallel and (settings.parallel_calls or fmt != "json")
    if fmt == "hermes":
        one = b.rule("tool-call", f'"<tool_call>" ws {call} "</tool_call>" ws')
        b.set_root(f"{one}+" if parallel else one)
    elif fmt == "mistral":
        more = f' ( "," ws {call} )*' if parallel else ""
        b.set_root(f'"[TOOL_CALLS]" "[" ws {call}{more} "]" ws')
    elif fmt == "llama3":
        b.set_root(call)
    else:
        b.set_root(_json_root(b, call, settings, parallel, forced))
    return b.grammar().gbnf


def _json_root(b: GrammarBuilder, call: str, s: ToolSettings, parallel: bool, forced: bool) -> str:
    """LocalAI's root assembly (pkg/functions/grammars rules.go): an optional array of calls,
    free text beside them in mixed mode, a literal prefix."""
    root = call
    if parallel:
        nl = "" if s.disable_parallel_new_lines else "\\n"
        arr = b.rule("arr", f'"[{nl}" ws ( {call} ( ",{nl}" ws {call} )* )? "]" ws')
        root = f"{arr} | {call}"
    mixed = s.mixed_mode and not forced
    if mixed:
        free = b.rule("freestring", '[^\\x00]*')
        if s.no_mixed_free_string:
            text = free
        elif s.expect_strings_after_json:
            text = b.rule("mixedstring", f"{free} | ( {free} ( {root} ) {free} )")
        else:
            text = b.rule("mixedstring", f"{free} | {free} ( {root} )")
        root = f"{text} | {root}" if not s.prefix else f"( {_literal(s.prefix)} ( {root} ) | {text} )"
    elif s.prefix:
        root = f"{_literal(s.prefix)} ( {root} )"
    return root


# -- the reply ------------------------------------------------------------------------------------


@dataclass
class ToolCall:
    index: int
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class CallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True)
class CallArguments:
    index: int
    text: str


StreamEvent = Union[ContentDelta, CallStart, CallArguments]


def call_id() -> str:
    """An id shaped like OpenAI's: call_ and 24 letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "call_" + "".join(secrets.choice(alphabet) for _ in range(24))


@dataclass
class _Partial:
    """What the scanner knows of one call so far."""

    name: str | None = None
    args: str = ""  # the arguments as JSON text, as far as it goes
    args_done: bool = False
    done: bool = False
    is_answer: bool = False
    message: str = ""  # an answer call's message so far


class ToolCallParser:
    """Content and tool calls out of a reply, as the text arrives.

    Text is content until something that may be a call begins: the format's marker
    (<tool_call>, [TOOL_CALLS], <|python_tag|>), or for JSON calls a `{` or `[` (LocalAI's
    models answer in bare JSON). From there it is held back and scanned: a call's name is
    announced as soon as it is complete, its arguments follow piece by piece, and a no-action
    (`answer`) call's message streams as content. Held text that turns out not to be a call is
    released as content. LocalAI's regex rules (response_regex, json_regex_match, ...) need the
    whole reply: with them, everything from a possible call on waits for the end.
    """

    def __init__(self, req: ToolRequest, fmt: Format, settings: ToolSettings | None = None):
        self.req = req
        self.fmt = fmt
        self.s = settings or ToolSettings()
        self.text = ""
        self._released = 0  # characters of `text` decided as content and sent
        self._search = 0  # where to look for the next possible call
        self._hold: int | None = None  # where the possible call being read begins
        self._sent: list[list[Any]] = []  # per scanned call: [id, started, args sent, message sent]
        self.calls: list[ToolCall] = []
        self._final_args: set[str] = set()  # ids of calls whose arguments were a JSON string, sent decoded
        self.content = ""
        self._finished = False

    def feed(self, delta: str) -> list[StreamEvent]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self.text += delta
        return self._advance(final=False)

    def finish(self) -> list[StreamEvent]:
        self._finished = True
        out = self._advance(final=True)
        for tc in self.calls:
            if tc.id in self._final_args:
                continue
            if not tc.arguments.strip():
                # A call without arguments: clients that join the pieces get what the whole reply says.
                tc.arguments = _finish_arguments(tc.arguments, self.s.automatic_parsing_fallback)
                out.append(CallArguments(tc.index, tc.arguments))
            else:
                tc.arguments = _finish_arguments(tc.arguments, self.s.automatic_parsing_fallback)
        return out

    def _emit_content(self, text: str, out: list[StreamEvent]) -> None:
        if text:
            self.content += text
            out.append(ContentDelta(text))

    def _release_to(self, pos: int, out: list[StreamEvent]) -> None:
        if pos > self._released:
            self._emit_content(self.text[self._released:pos], out)
            self._released = pos

    def _advance(self, final: bool) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        while True:
            if self._hold is None:
                start, safe = self._call_start()
                if start is None:
                    self._release_to(len(self.text) if final else safe, out)
                    return out
                self._release_to(start, out)
                self._hold = start
            if self.s.regex_parsing and self.fmt == "json":
                if final:
                    self._regex_finish(out)
                return out
            verdict = self._scan(final, out)
            if verdict:
                return out
            # Not a call after all: it is content; look for one further on.
            self._search = self._hold + 1
            self._hold = None

    def _call_start(self) -> tuple[int | None, int]:
        """(where a call may begin at or after the search point, or None; how far the text is
        surely content)."""
        text, origin = self.text, self._search
        if self.fmt == "json":
            openers: tuple[str, ...] = ("{", "[") + ((self.s.prefix,) if self.s.prefix else ())
            if self.s.schema_type == "llama3.1":
                openers += ("<function=",)
        else:
            openers = MARKERS[self.fmt][:1]
        hits = [p for p in (text.find(o, origin) for o in openers) if p >= 0]
        if self.fmt == "llama3" and not self._released and origin == 0:
            stripped = text.lstrip()
            if stripped.startswith("{"):
                hits.append(len(text) - len(stripped))
            elif not stripped:
                return None, 0  # only whitespace yet: a call may still begin
        if hits:
            return min(hits), min(hits)
        return None, max(self._released, len(text) - _partial_tail(text, openers))

    def _scan(self, final: bool, out: list[StreamEvent]) -> bool:
        """Read the held text; False when it is not a call (then it is content)."""
        assert self._hold is not None
        held = self.text[self._hold:]
        calls, end, ok = _scan_calls(held, self.fmt, self.s, final)
        if not ok:
            # Once a call (or an answer's message) went out, what follows cannot become content.
            return any(st[1] or st[3] for st in self._sent)
        for i, c in enumerate(calls):
            if c.name is None:
                break
            while len(self._sent) <= i:
                self._sent.append([call_id(), False, 0, 0])
            state = self._sent[i]
            if c.is_answer:
                if len(c.message) > state[3]:
                    self._emit_content(c.message[state[3]:], out)
                    state[3] = len(c.message)
                continue
            if not state[1]:
                self.calls.append(ToolCall(len(self.calls), state[0], c.name, ""))
                out.append(CallStart(len(self.calls) - 1, state[0], c.name))
                state[1] = True
            call = next(tc for tc in self.calls if tc.id == state[0])
            if c.args.startswith('"'):
                # Arguments given as a JSON string: what a client receives is the string's value,
                # known only once the string closes, so it goes out in one piece.
                if c.args_done and state[0] not in self._final_args:
                    call.arguments = _finish_arguments(c.args, self.s.automatic_parsing_fallback)
                    out.append(CallArguments(call.index, call.arguments))
                    self._final_args.add(state[0])
                continue
            if len(c.args) > state[2]:
                piece = c.args[state[2]:]
                call.arguments += piece
                out.append(CallArguments(call.index, piece))
                state[2] = len(c.args)
        if final and self.fmt == "hermes" and end >= 0:
            tail = held[end:].strip()
            if tail:
                self._emit_content(("\n" if self.content else "") + tail, out)
        return True

    def _regex_finish(self, out: list[StreamEvent]) -> None:
        assert self._hold is not None
        content, calls = parse_with_regex_rules(self.text, self.s)
        before = self.content
        if content.startswith(before):
            self._emit_content(content[len(before):], out)
        for name, args in calls:
            cid = call_id()
            self.calls.append(ToolCall(len(self.calls), cid, name, args))
            out.append(CallStart(len(self.calls) - 1, cid, name))
            out.append(CallArguments(len(self.calls) - 1, args))


def _finish_arguments(args: str, fallback: bool) -> str:
    """The arguments string a call ends with: its JSON text, or a JSON string's value."""
    text = args.strip()
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, str):
            try:
                json.loads(value)
                return value
            except ValueError:
                return json.dumps({"query": value}, ensure_ascii=False) if fallback else value
    return text or "{}"


def _partial_tail(text: str, markers: tuple[str, ...]) -> int:
    best = 0
    for m in markers:
        for k in range(min(len(m) - 1, len(text)), best, -1):
            if text.endswith(m[:k]):
                best = k
                break
    return best


# -- scanning JSON calls --------------------------------------------------------------------------


class _Scanner:
    """A tolerant reader of JSON text that may stop anywhere (a stream's prefix)."""

    def __init__(self, text: str, pos: int = 0):
        self.t = text
        self.i = pos

    def ws(self) -> None:
        while self.i < len(self.t) and self.t[self.i] in " \t\r\n":
            self.i += 1

    def at_end(self) -> bool:
        return self.i >= len(self.t)

    def string(self) -> tuple[str, bool]:
        """A JSON string at the position: (its value so far, complete?)."""
        assert self.t[self.i] == '"'
        j = self.i + 1
        out: list[str] = []
        while j < len(self.t):
            c = self.t[j]
            if c == '"':
                self.i = j + 1
                return "".join(out), True
            if c == "\\":
                if j + 1 >= len(self.t):
                    break
                d = self.t[j + 1]
                if d == "u":
                    if j + 6 > len(self.t):
                        break
                    try:
                        out.append(chr(int(self.t[j + 2:j + 6], 16)))
                    except ValueError:
                        raise _NotJSON from None
                    j += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(d, d))
                j += 2
                continue
            out.append(c)
            j += 1
        self.i = len(self.t)
        return "".join(out), False

    def value_span(self) -> tuple[int, bool]:
        """Skip one JSON value: (where it ends so far, complete?)."""
        t = self.t
        if self.at_end():
            return self.i, False
        c = t[self.i]
        if c == '"':
            _, done = self.string()
            return self.i, done
        if c in "{[":
            depth = 0
            in_str = False
            j = self.i
            while j < len(t):
                ch = t[j]
                if in_str:
                    if ch == "\\":
                        j += 2
                        continue
                    if ch == '"':
                        in_str = False
                elif ch == '"':
                    in_str = True
                elif ch in "{[":
                    depth += 1
                elif ch in "}]":
                    depth -= 1
                    if depth == 0:
                        self.i = j + 1
                        return self.i, True
                j += 1
            self.i = len(t)
            return self.i, False
        m = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null").match(t, self.i)
        if m is None:
            raise _NotJSON
        self.i = m.end()
        return self.i, self.i < len(t)  # a number may go on


class _NotJSON(Exception):
    pass


def _scan_object_call(sc: _Scanner, name_key: str, args_keys: tuple[str, ...], s: ToolSettings) -> _Partial | None:
    """A call object at the scanner: None if it is not one (a first key that is not a call's)."""
    t = sc.t
    if sc.at_end() or t[sc.i] != "{":
        raise _NotJSON
    sc.i += 1
    call = _Partial()
    while True:
        sc.ws()
        if sc.at_end():
            return call
        if t[sc.i] == "}":
            sc.i += 1
            call.done = True
            return call
        if t[sc.i] == ",":
            sc.i += 1
            continue
        if t[sc.i] != '"':
            raise _NotJSON
        key, complete = sc.string()
        if not complete:
            return call
        if key not in (name_key, *args_keys) and call.name is None and not call.args:
            if not any(k.startswith(key) or key == k for k in (name_key, *args_keys)):
                return None
        sc.ws()
        if sc.at_end():
            return call
        if t[sc.i] != ":":
            raise _NotJSON
        sc.i += 1
        sc.ws()
        if sc.at_end():
            return call
        if key == name_key:
            if t[sc.i] != '"':
                raise _NotJSON
            name, done = sc.string()
            if not done:
                return call
            call.name = name
            call.is_answer = s.no_action and name == s.no_action_name
        elif key in args_keys:
            start = sc.i
            end, done = sc.value_span()
            call.args = t[start:end]
            call.args_done = done
            if call.is_answer:
                call.message = _answer_message(call.args)
            if not done:
                return call
        else:
            _, done = sc.value_span()
            if not done:
                return call


def _answer_message(args: str) -> str:
    """The `message` of a no-action call's arguments so far (streamed as content)."""
    m = re.search(r'"message"\s*:\s*"', args)
    if m is None:
        return ""
    sc = _Scanner(args, m.end() - 1)
    value, done = sc.string()
    if not done:
        # A partial escape at the very end would decode wrong: keep it back.
        tail = args[m.end():]
        if tail.endswith("\\") or re.search(r"\\u[0-9a-fA-F]{0,3}$", tail):
            value = value[:-1] if value else value
    return value


def _scan_calls(held: str, fmt: Format, s: ToolSettings, final: bool) -> tuple[list[_Partial], int, bool]:
    """The calls in the held text: (calls so far, where the last complete one ended or -1, ok).
    ok False: the held text is not calls (it is content)."""
    calls: list[_Partial] = []
    end = -1
    try:
        if fmt == "hermes":
            pos = 0
            while True:
                start = held.find("<tool_call>", pos)
                if start < 0:
                    if held[pos:].strip() and not calls:
                        return [], -1, False
                    break
                sc = _Scanner(held, start + len("<tool_call>"))
                sc.ws()
                if sc.at_end():
                    break
                call = _scan_object_call(sc, "name", ("arguments", "parameters"), s)
                if call is None:
                    return [], -1, False
                calls.append(call)
                if not call.done:
                    break
                sc.ws()
                close = held.find("</tool_call>", sc.i)
                if close < 0:
                    break
                pos = close + len("</tool_call>")
                end = pos
            return calls, end, True
        if fmt == "mistral":
            sc = _Scanner(held, held.find("[TOOL_CALLS]") + len("[TOOL_CALLS]"))
            sc.ws()
            if sc.at_end():
                return calls, -1, True
            single = held[sc.i] == "{"
            if not single:
                if held[sc.i] != "[":
                    raise _NotJSON
                sc.i += 1
            while True:
                sc.ws()
                if sc.at_end() or held[sc.i] == "]":
                    break
                if held[sc.i] == ",":
                    sc.i += 1
                    continue
                call = _scan_object_call(sc, "name", ("arguments",), s)
                if call is None:
                    raise _NotJSON
                calls.append(call)
                if not call.done or single:
                    break
            return calls, sc.i, True
        if fmt == "llama3":
            sc = _Scanner(held, 0)
            if held.startswith("<|python_tag|>"):
                sc.i = len("<|python_tag|>")
            sc.ws()
            if sc.at_end():
                return calls, -1, True
            call = _scan_object_call(sc, "name", ("parameters", "arguments"), s)
            if call is None:
                return [], -1, False
            if final and call.name is None:
                return [], -1, False
            return [call], sc.i, True
        # LocalAI's JSON: an object, an array of objects, after an optional prefix.
        sc = _Scanner(held, 0)
        if s.prefix and held.startswith(s.prefix):
            sc.i = len(s.prefix)
        sc.ws()
        if sc.at_end():
            return calls, -1, True
        if s.schema_type == "llama3.1" and held.startswith("<function=", sc.i):
            return _scan_function_tags(held, sc.i, s)
        array = held[sc.i] == "["
        if array:
            sc.i += 1
        while True:
            sc.ws()
            if sc.at_end():
                break
            if array and held[sc.i] == "]":
                sc.i += 1
                break
            if held[sc.i] == ",":
                sc.i += 1
                continue
            if held[sc.i] != "{":
                raise _NotJSON
            call = _scan_object_call(sc, s.name_key, (s.arguments_key,), s)
            if call is None:
                return [], -1, False
            calls.append(call)
            if not call.done:
                break
            end = sc.i
            if not array:
                break
        if final and (not calls or any(c.name is None for c in calls)):
            return [], -1, False
        return calls, end, True
    except _NotJSON:
        return [], -1, False


def _scan_function_tags(held: str, pos: int, s: ToolSettings) -> tuple[list[_Partial], int, bool]:
    calls = []
    end = -1
    for m in re.finditer(r"<function=([^>]*)>", held[pos:]):
        start = pos + m.end()
        close = held.find("</function>", start)
        body = held[start:] if close < 0 else held[start:close]
        calls.append(_Partial(name=m.group(1), args=body.strip(), args_done=close >= 0, done=close >= 0))
        if close >= 0:
            end = close + len("</function>")
    return calls, end, True


# -- LocalAI's regex rules (pkg/functions/parse.go ParseFunctionCall), whole replies only --------------


def _go_sub(pattern: str, repl: str, text: str) -> str:
    try:
        return goregex.compile(pattern).replace_all_string(text, repl)
    except goregex.GoRegexError:
        return text


def _marshal(value: Any) -> str:
    """Go's json.Marshal: compact, map keys sorted, <, > and & escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def parse_with_regex_rules(text: str, s: ToolSettings) -> tuple[str, list[tuple[str, str]]]:
    """(content, [(name, arguments)]) as LocalAI's ParseFunctionCall finds them."""
    for pattern, repl in s.replace_llm_results:
        text = _go_sub(pattern, repl, text)
    content = ""
    for pattern in s.capture_llm_results:
        try:
            m = goregex.compile(pattern).find(text)
        except goregex.GoRegexError:
            continue
        if m is not None and m.re.groups:
            content = (m.group(1) or "").strip()
            break
    for pattern, repl in s.replace_function_results:
        text = _go_sub(pattern, repl, text)
    calls: list[tuple[str, str]] = []
    if s.response_regex:
        for pattern in s.response_regex:
            try:
                rx = goregex.compile(pattern)
            except goregex.GoRegexError:
                continue
            for m in rx.find_all(text):
                name = rx.group(m, s.name_key)
                if not name:
                    continue
                calls.append((name, _regex_arguments(rx.group(m, s.arguments_key), s)))
    else:
        candidates: list[str] = []
        for pattern in s.json_regex_match:
            try:
                rx = goregex.compile(pattern)
            except goregex.GoRegexError:
                continue
            found = [rx.group(m, "1") for m in rx.find_all(text)]
            if found:
                candidates = found
                break
        for candidate in candidates or [text]:
            for obj in _json_objects(candidate):
                fname, args = obj.get(s.name_key), obj.get(s.arguments_key)
                if not isinstance(fname, str) or s.arguments_key not in obj:
                    continue
                args_text: str
                if isinstance(args, str):
                    try:
                        parsed = json.loads(args)
                    except ValueError:
                        parsed = None
                    args_text = _marshal({"query": args}) if not isinstance(parsed, dict) and s.automatic_parsing_fallback else args
                else:
                    args_text = _marshal(args)
                calls.append((fname, args_text))
    calls = [(n, a) for n, a in calls if not (s.no_action and n == s.no_action_name)] or calls
    if calls and all(s.no_action and n == s.no_action_name for n, _ in calls):
        try:
            message = json.loads(calls[0][1]).get("message")
        except (ValueError, AttributeError):
            message = None
        return (message if isinstance(message, str) else content), []
    if not calls:
        return (content or text), []
    return content, calls


def _regex_arguments(args: str, s: ToolSettings) -> str:
    if not s.argument_regex:
        return args
    found: dict[str, str] = {}
    for pattern in s.argument_regex:
        try:
            rx = goregex.compile(pattern)
        except goregex.GoRegexError:
            continue
        for m in rx.find_all(args):
            found[rx.group(m, s.argument_regex_key)] = rx.group(m, s.argument_regex_value)
    return _marshal(found)


def _json_objects(text: str) -> list[dict]:
    """Every JSON object in the text (arrays give their objects), as LocalAI's lenient parser."""
    out: list[dict] = []
    decoder = json.JSONDecoder()
    i = 0
    while True:
        starts = [p for p in (text.find("{", i), text.find("[", i)) if p >= 0]
        if not starts:
            return out
        i = min(starts)
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(value, dict):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, dict))
        i = end


# -- whole replies --------------------------------------------------------------------------------


@dataclass
class ParsedReply:
    content: str
    calls: list[ToolCall] = field(default_factory=list)


def parse_reply(text: str, req: ToolRequest, fmt: Format, settings: ToolSettings | None = None) -> ParsedReply:
    """Content and calls of a whole reply, exactly as a stream of it gives them."""
    parser = ToolCallParser(req, fmt, settings)
    parser.feed(text)
    parser.finish()
    return ParsedReply(parser.content, parser.calls)
