"""Request bodies: the size, time, content type and JSON shape every route may rely on, refused with a clear 4xx otherwise."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.errors import ClientDisconnected, error_response
from server.errors import BodyTimeout, BodyTooLarge, InvalidRequest, LlamaslotsError, UnsupportedMediaType

# Deeper JSON than this is no request anyone writes (schemas and tool parameters nest a few
# levels); past it the parser and the schema converters would recurse into a RecursionError.
MAX_DEPTH = 64
# Seconds a client may take between two pieces of its request body.
BODY_TIMEOUT = 30.0
# What a browser page may POST to another origin without asking first (no CORS preflight):
# refusing them keeps web pages from driving a keyless local server.
_SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


class BodyGuardMiddleware:
    """Refuses a body over `limit` bytes (413, by Content-Length before reading, else while
    reading: never buffered whole), one sent slower than BODY_TIMEOUT between pieces (408),
    and a POST body not declared as JSON (415): a browser form's types, or none at all."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float = BODY_TIMEOUT) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            # Every body is bounded (LocalAI's GET /backend/monitor reads one too); the content
            # type matters where a browser form could send one.
            self._check_headers(headers, form_matters=scope["method"] in ("POST", "PUT", "PATCH"))
        except LlamaslotsError as refused:
            await error_response(refused)(scope, receive, send)
            return
        seen = 0
        complete = False
        started = False

        async def guarded_receive() -> Message:
            nonlocal seen, complete
            if complete:
                # The body is in: what follows is the wait for a disconnect, which lasts as long
                # as the answer does (disconnect watchers call this for the whole request).
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                raise BodyTimeout(f"the request body did not arrive: nothing came for {self.timeout:g}s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise self._too_large()
                complete = not message.get("more_body", False)
            else:
                complete = True  # a disconnect: nothing more will come
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        # A route reading the body gets these errors as its own (its error handling answers);
        # one that escapes is answered here, if nothing was sent yet.
        try:
            await self.app(scope, guarded_receive, tracking_send)
        except (BodyTooLarge, BodyTimeout) as refused:
            if not started:
                await error_response(refused)(scope, receive, send)

    def _check_headers(self, headers: dict[str, str], *, form_matters: bool) -> None:
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise self._too_large()
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not form_matters:
            return
        if media in _SIMPLE_TYPES:
            raise UnsupportedMediaType(f"Content-Type {media} is not accepted: send the body as application/json")
        has_body = (length is not None and length.strip() not in ("", "0")) or "transfer-encoding" in headers
        if has_body and not _is_json(media):
            # A body without a type is what a page's fetch() of a Blob sends without a preflight.
            raise UnsupportedMediaType(f"Content-Type {media or '(none)'} is not accepted: send the body as "
                                       "application/json")

    def _too_large(self) -> BodyTooLarge:
        mib = self.limit / (1 << 20)
        return BodyTooLarge(f"the request body is larger than the upload limit of {mib:g} MB "
                            "(--upload-limit / LOCALAI_UPLOAD_LIMIT)")


def _is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json_object(request: Request) -> dict[str, Any]:
    try:
        raw = await request.body()
    except ClientDisconnect:
        # The client left while sending: nobody to answer, nothing to log as an error.
        raise ClientDisconnected() from None
    return decode_json_object(raw)


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidRequest naming what is wrong with it."""
    if not raw.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8 text; send a JSON object") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidRequest(f"the request body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits, or NaN
        raise InvalidRequest(f"the request body is not acceptable JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"the request body must be a JSON object, got a JSON {json_kind(body)}")
    check_json_value(body)
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number")


def check_json_value(value: Any) -> None:
    """Depth and text checks over a parsed body, without recursion: nesting past MAX_DEPTH, and
    strings (keys too) holding a lone surrogate (JSON's \\ud800 escapes decode to one, which no
    encoder can write: llama.cpp, a file name and even the error reply would fail on it)."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise InvalidRequest(f"the request body nests deeper than {MAX_DEPTH} levels (at {path or 'top'})")
            if isinstance(item, dict):
                for key, child in item.items():
                    where = f"{path}.{key}" if path else str(key)
                    _check_text(key, where)
                    stack.append((child, depth + 1, where))
            else:
                for i, child in enumerate(item):
                    stack.append((child, depth + 1, f"{path}[{i}]"))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = _printable(path) or "a key"
        raise InvalidRequest(
            f"{where}: the text holds a lone surrogate (U+{ord(text[exc.start]):04X} at character {exc.start}), "
            "which is not Unicode text; send valid UTF-16 pairs in JSON escapes") from None


def _printable(path: str) -> str:
    return path.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null"
