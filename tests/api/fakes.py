"""Fakes for the HTTP layer's tests: a manager/handle that replay scripted engine events."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Union

from compat.config_schema import ModelConfig, TemplateConfig
from server.engine.types import Event, Failed, Finished, GenerateRequest, ModelInfo, TextDelta, Usage
from server.errors import ModelLoadFailed, ModelNotFound
from server.metrics import Metrics


def plain_template() -> TemplateConfig:
    """Go templates that show exactly what reached them: `role: content` per message."""
    return TemplateConfig(chat_message="{{.RoleName}}: {{.Content}}", chat="{{.Input}}", completion="{{.Input}}")


def model_config(name: str, *, embeddings: bool = False, reply_prefix: str = "", **fields: Any) -> ModelConfig:
    """A real compat ModelConfig as the config loader would give it."""
    fields.setdefault("template", plain_template())
    if reply_prefix:
        fields["template"].reply_prefix = reply_prefix
    return ModelConfig(name=name, embeddings=embeddings, **fields)


class Hang:
    """Script step: block until cancelled (a generation that is still running)."""


@dataclass
class Call:
    """Script step: call fn (e.g. to make the fake client disconnect) and go on."""

    fn: Callable[[], None]


@dataclass
class Sleep:
    seconds: float


Step = Union[Event, Hang, Call, Sleep]


def info(chat_template: str | None = None) -> ModelInfo:
    return ModelInfo(
        n_ctx=512, n_ctx_seq=512, n_slots=2, n_vocab=100, n_ctx_train=512, kv_unified=True,
        embeddings=False, chat_template=chat_template, bos_text="<s>", eos_text="</s>",
    )


def script_text(*pieces: str, reason: str = "stop", prompt_tokens: int = 7, cached: int = 0) -> list[Step]:
    steps: list[Step] = [TextDelta(p) for p in pieces]
    steps.append(Finished(reason, Usage(prompt_tokens, len(pieces), cached)))  # type: ignore[arg-type]
    return steps


class FakeHandle:
    def __init__(self, config: ModelConfig, script: list[Step] | None = None, chat_template: str | None = None):
        self.name = config.name
        self.config = config
        self.info = info(chat_template)
        self.script: list[Step] = script if script is not None else script_text("Hello", " world")
        self.requests: list[GenerateRequest] = []
        self.completed = 0  # generators that yielded their terminal event (Finished/Failed)
        self.cancelled = 0  # generators closed before that
        self.vectors: dict[str, list[float]] = {}
        self.tokenized: list[tuple[str, bool, bool]] = []
        self.metrics = Metrics().for_model(self.name, self.info.n_slots)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Event]:
        self.requests.append(req)
        done = False
        try:
            for step in self.script:
                if isinstance(step, Hang):
                    await asyncio.Event().wait()
                elif isinstance(step, Call):
                    step.fn()
                elif isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                else:
                    if isinstance(step, (Finished, Failed)):
                        done = True
                        self.completed += 1
                    yield step
        finally:
            if not done:
                self.cancelled += 1

    async def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        self.tokenized.append((text, add_special, parse_special))
        ids = [ord(c) for c in text]
        return ([1] + ids) if add_special else ids

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors.get(t, [float(len(t)), 0.5, -1.0]) for t in texts]


class FakeManager:
    def __init__(self, handles: list[FakeHandle], load_failures: dict[str, str] | None = None):
        self.handles = {h.name: h for h in handles}
        self.load_failures = load_failures or {}
        self.models_path = Path("/fake/models")
        self.started = 0
        self.closed = 0
        self.held = 0  # handles acquired and not yet released
        self.acquired: list[str] = []
        self.load_gate: asyncio.Event | None = None
        self.metrics = Metrics()
        for h in handles:
            h.metrics = self.metrics.for_model(h.name, h.info.n_slots)

    def list_models(self) -> list[str]:
        return list(self.handles)

    def config_for(self, name: str | None) -> ModelConfig:
        if name is None:
            return next(iter(self.handles.values())).config
        if name not in self.handles:
            raise ModelNotFound(name)
        return self.handles[name].config

    def takes_now(self, name: str | None) -> bool:
        # As ModelManager: acquire would not wait (no load failure, no swap under way).
        return name not in self.load_failures and self.load_gate is None

    @asynccontextmanager
    async def acquire(self, name: str) -> AsyncIterator[FakeHandle]:
        if name in self.load_failures:
            raise ModelLoadFailed(name, self.load_failures[name])
        if self.load_gate is not None:  # a swap under way: wait for it
            await self.load_gate.wait()
        handle = self.handles[name]
        self.acquired.append(name)
        self.held += 1
        try:
            yield handle
        finally:
            self.held -= 1

    async def start(self) -> None:
        self.started += 1

    async def aclose(self) -> None:
        self.closed += 1
