"""Every failure a user can cause or see, as a type with its HTTP status and LocalAI error shape."""
from __future__ import annotations


class LlamaslotsError(Exception):
    """Base: carries the HTTP status and the OpenAI/LocalAI error `type`."""

    status: int = 500
    type: str = "server_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):
        # Subclasses take other constructor arguments; rebuild from message + attributes so
        # errors cross the worker pipe intact.
        return (_restore, (type(self), self.message, dict(self.__dict__)))

    def to_json(self) -> dict:
        return {"error": {"code": self.status, "message": self.message, "type": self.type}}


def _restore(cls, message: str, state: dict) -> LlamaslotsError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class InvalidRequest(LlamaslotsError):
    status = 400
    type = "invalid_request_error"


class ModelNotFound(LlamaslotsError):
    status = 404
    type = "invalid_request_error"

    def __init__(self, name: str):
        super().__init__(
            f'model "{name}" not found. To see available models, call GET /v1/models'
        )
        self.name = name


class BodyTooLarge(LlamaslotsError):
    status = 413
    type = "invalid_request_error"


class BodyTimeout(LlamaslotsError):
    status = 408
    type = "invalid_request_error"


class UnsupportedMediaType(LlamaslotsError):
    status = 415
    type = "invalid_request_error"


class ModelNotLoaded(LlamaslotsError):
    """An operation on a resident model (unload, monitor) named one that is not loaded."""

    status = 404
    type = "invalid_request_error"

    def __init__(self, name: str):
        super().__init__(f'model "{name}" is not loaded')
        self.name = name


class PromptTooLong(InvalidRequest):
    def __init__(self, n_prompt: int, n_ctx: int):
        super().__init__(
            f"the request ({n_prompt} prompt tokens) exceeds the available context size "
            f"({n_ctx} tokens); shorten the prompt or raise context_size"
        )
        self.n_prompt = n_prompt
        self.n_ctx = n_ctx


class FeatureDisabled(InvalidRequest):
    """The model's config does not enable what the request asks for (e.g. embeddings)."""


class Unauthorized(LlamaslotsError):
    status = 401
    type = "authentication_error"


class ModelLoadFailed(LlamaslotsError):
    status = 500
    type = "server_error"

    def __init__(self, name: str, reason: str):
        super().__init__(f"could not load model {name}: {reason}")
        self.name = name
        self.reason = reason


class ModelConfigInvalid(LlamaslotsError):
    """The model's config cannot serve this request (check-config names the problem too)."""

    status = 500
    type = "server_error"

    def __init__(self, name: str, reason: str):
        super().__init__(f"the config of model {name} is invalid: {reason}; `llamaslots check-config` shows it")
        self.name = name
        self.reason = reason


class EngineFailed(LlamaslotsError):
    """llama.cpp refused a step (decode error) or the model's engine stopped."""

    status = 500
    type = "server_error"


class ServerBusy(LlamaslotsError):
    status = 503
    type = "server_error"
