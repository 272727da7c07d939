"""The LocalAI-compat functions the routes call (prompt, merge, postprocess), as one replaceable set."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol


class StreamPostprocessor(Protocol):
    def feed(self, delta: str) -> str: ...

    def finish(self) -> str: ...


@dataclass(frozen=True)
class CompatFunctions:
    """What the HTTP layer needs from `compat`; tests may pass their own to isolate the routes.

    Signatures are those of compat.prompt / compat.request_params / compat.postprocess.
    """

    build_chat_prompt: Callable[..., Any]  # (config, models_path, request, *, tokenizer_template)
    build_completion_prompt: Callable[..., Any]  # (config, models_path, prompt, request)
    tokenizer_template: Callable[[str, str, str], Any]  # TokenizerTemplate(template, bos, eos)
    merge_generation_params: Callable[..., Any]  # (config, request, *, endpoint)
    unknown_request_fields: Callable[[dict, str], list[tuple[str, str | None]]]
    finetune: Callable[[Any, str], str]
    stream_finetuner: Callable[[Any], StreamPostprocessor]
    # Fields LocalAI accepts but never applies per request (mirostat, repeat_last_n, ...).
    ignored_request_fields: Callable[[dict], list[str]] = lambda body: []
    # Exceptions compat raises for a bad request value; the routes answer them with 400.
    request_errors: tuple[type[Exception], ...] = ()

    @classmethod
    def from_compat(cls) -> "CompatFunctions":
        # Imported here, not at module load: the app module stays importable (and testable
        # with fakes) on its own.
        from compat.jinja_chat import ChatTemplateError
        from compat.postprocess import StreamPostprocessor, postprocess_reply
        from compat.prompt import (
            PromptRequestError,
            TokenizerTemplate,
            build_chat_prompt,
            build_completion_prompt,
        )
        from compat.request_params import (
            RequestFieldError,
            ignored_request_fields,
            merge_generation_params,
            unknown_request_fields,
        )

        return cls(
            build_chat_prompt=build_chat_prompt,
            build_completion_prompt=build_completion_prompt,
            tokenizer_template=TokenizerTemplate,
            merge_generation_params=merge_generation_params,
            unknown_request_fields=unknown_request_fields,
            finetune=postprocess_reply,
            stream_finetuner=StreamPostprocessor,
            ignored_request_fields=ignored_request_fields,
            # A GGUF template's raise_exception() is nearly always about the messages
            # ("roles must alternate"), so it is the client's to fix.
            request_errors=(RequestFieldError, PromptRequestError, ChatTemplateError),
        )
