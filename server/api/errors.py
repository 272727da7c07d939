"""Maps every failure to LocalAI's error JSON {"error": {"code", "message", "type"}} and its status."""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Coroutine, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from compat.errors import RequestError
from server.errors import InvalidRequest, LlamaslotsError

logger = logging.getLogger("llamaslots.api")


def error_json(status: int, message: str, type_: str | None = None) -> dict:
    if type_ is None:
        type_ = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"code": status, "message": message, "type": type_}}


def error_response(exc: LlamaslotsError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status)


def unexpected_error(exc: BaseException) -> LlamaslotsError:
    """The error a client sees for a bug: the exception's class and text, never a traceback."""
    return LlamaslotsError(f"internal server error: {type(exc).__name__}: {exc}")


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def validation_message(errors: Sequence[Any]) -> str:
    """One clause per field, naming it: `temperature: Input should be a valid number (got "hot")`."""
    by_field: dict[str, list[str]] = {}
    shown_input: dict[str, str] = {}
    for err in errors:
        loc = tuple(err.get("loc", ()))
        # FastAPI prefixes "body"; pydantic unions add the member type to the path ("stop.str"),
        # which means nothing to a client, so the path ends at the last real key.
        if loc and loc[0] == "body":
            loc = loc[1:]
        loc = tuple(x for x in loc if not (isinstance(x, str) and ("[" in x or x in _TYPE_TAGS)))
        field = _field_path(loc)
        if err.get("type") == "missing":
            msg = "field required"
        else:
            msg = str(err.get("msg", "invalid value"))
            got = err.get("input")
            if got is not None and not isinstance(got, (dict, list)):
                shown_input[field] = f" (got {json.dumps(got, ensure_ascii=False)[:80]})"
        messages = by_field.setdefault(field, [])
        if msg not in messages:
            messages.append(msg)
    clauses = []
    for field, messages in by_field.items():
        # A union reports each member: "Input should be a valid string or a valid list".
        tail = [m.removeprefix("Input should be ") if m.startswith("Input should be ") else m
                for m in messages[1:]]
        clauses.append(f"{field}: {' or '.join([messages[0], *tail])}{shown_input.get(field, '')}")
    return "invalid request: " + "; ".join(clauses)


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "list[str]", "constrained-str"}


def invalid_request_from(exc: ValidationError) -> InvalidRequest:
    return InvalidRequest(validation_message(exc.errors()))


async def _on_llamaslots_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LlamaslotsError)
    if exc.status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def _on_request_error(request: Request, exc: Exception) -> Response:
    return error_response(InvalidRequest(str(exc)))


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, (RequestValidationError, ValidationError))
    return error_response(InvalidRequest(validation_message(exc.errors())))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return JSONResponse(error_json(status, message), status_code=status, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    logger.error(
        "%s %s: unexpected error", request.method, request.url.path, exc_info=exc
    )
    return error_response(unexpected_error(exc))


class ClientDisconnected(Exception):
    """The client went away before its answer started; the work was cancelled. Nobody reads
    the response, which is logged as 499 (nginx's "client closed request")."""


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LlamaslotsError, _on_llamaslots_error)
    app.add_exception_handler(RequestError, _on_request_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(ValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    # Starlette re-raises after a handler for Exception runs (so servers log it twice);
    # ErrorCatchingRoute below turns route bugs into a 500 first. This stays as the last net.
    app.add_exception_handler(Exception, _on_unexpected)


class ErrorCatchingRoute(APIRoute):
    """A route whose unexpected exceptions become a logged 500 in LocalAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientDisconnected:
                logger.info("client left before its answer was ready; its work was cancelled")
                return Response(status_code=499)
            except RequestError as exc:
                # compat's word for "the client must change the request".
                raise InvalidRequest(str(exc)) from None
            except (LlamaslotsError, StarletteHTTPException, RequestValidationError, ValidationError):
                raise
            except Exception as exc:  # noqa: BLE001 - turning bugs into a clean 500 is the point
                return await _on_unexpected(request, exc)

        return guarded
