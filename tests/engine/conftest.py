"""Helpers to drive an Engine from a test thread and collect each request's events."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from compat.params import GenerationParams, SamplingParams
from server.engine.client import LocalEngine as Engine
from compat.model_settings import LoadSettings
from server.engine.types import Failed, Finished, GenerateRequest, TextDelta


@dataclass
class Run:
    deltas: list[str] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)  # each delta's
    end: Finished | Failed | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def sink(self, ev) -> None:
        if isinstance(ev, TextDelta):
            assert self.end is None, "text after the end event"
            self.deltas.append(ev.text)
            self.n_tokens.append(ev.n_tokens)
        else:
            self.end = ev
            self.done.set()

    def wait(self, timeout: float = 60.0) -> "Run":
        assert self.done.wait(timeout), "request did not finish"
        return self

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def greedy(max_tokens=None, stop=(), **kw) -> GenerationParams:
    return GenerationParams(SamplingParams(temperature=0.0, **kw), max_tokens=max_tokens, stop=tuple(stop))


def submit(engine: Engine, prompt, params: GenerationParams) -> Run:
    run = Run()
    engine.submit(GenerateRequest(prompt, params), run.sink)
    return run


@pytest.fixture
def make_engine():
    engines: list[Engine] = []

    def make(path, **kw) -> Engine:
        kw.setdefault("n_threads", 2)
        kw.setdefault("n_ctx", 512)
        e = Engine(LoadSettings(model_path=path, **kw), name=str(path.name))
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close()
