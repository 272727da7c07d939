"""Sends the prompts to one side (a server) at a set concurrency and records each answer with its timings."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import httpx

from server.compare.findings import Answer
from server.compare.prompts import Prompt


@dataclass(frozen=True)
class Side:
    name: str  # "A" or "B"
    url: str  # the server's base URL, with or without /v1
    model: Optional[str] = None  # overrides the prompts' own
    key: Optional[str] = None
    second_model: Optional[str] = None  # for the swap pass

    @property
    def api(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    @property
    def root(self) -> str:
        base = self.url.rstrip("/")
        return base[:-3] if base.endswith("/v1") else base

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


@dataclass(frozen=True)
class Job:
    prompt_index: int
    prompt: Prompt
    repeat: int
    stream: bool
    model: Optional[str]


@dataclass
class SidePass:
    side: Side
    answers: list[Answer] = field(default_factory=list)
    wall_s: float = 0.0
    # The model's own special tokens, per model, where the server lists them.
    special_tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra_tokens: tuple[str, ...] = ()  # --special-token: for every model

    def tokens_for(self, model: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.special_tokens.get(model, ()), *self.extra_tokens]))

    @property
    def all_tokens(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([t for ts in self.special_tokens.values() for t in ts] + list(self.extra_tokens)))


async def run_side(side: Side, jobs: list[Job], *, concurrency: int, timeout: float,
                   on_done: Callable[[], None] = lambda: None) -> SidePass:
    result = SidePass(side)
    gate = asyncio.Semaphore(max(1, concurrency))
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(headers=side.headers(), limits=limits, timeout=timeout) as client:
        async def one(job: Job) -> None:
            async with gate:
                answer = await ask(client, side, job, timeout)
                result.answers.append(answer)
                # Asked right after an answer, while its model is surely loaded (a swap may
                # unload it later in the pass).
                if answer.model and answer.model not in result.special_tokens:
                    result.special_tokens[answer.model] = ()
                    result.special_tokens[answer.model] = await model_tokens(client, side, answer.model)
            on_done()

        started = time.monotonic()
        await asyncio.gather(*(one(j) for j in jobs))
        result.wall_s = time.monotonic() - started
    result.answers.sort(key=lambda a: (a.prompt, a.repeat, a.stream, a.model))
    return result


async def ask(client: httpx.AsyncClient, side: Side, job: Job, timeout: float) -> Answer:
    body: dict[str, Any] = dict(job.prompt.body)
    if job.model:
        body["model"] = job.model
    body["stream"] = job.stream
    if job.stream:
        body["stream_options"] = {"include_usage": True}
    answer = Answer(side.name, job.prompt_index, job.repeat, job.stream, str(body.get("model") or ""))
    started = time.monotonic()
    try:
        await asyncio.wait_for(_send(client, side, body, answer, started), timeout)
    except asyncio.TimeoutError:
        answer.timed_out = True
    except httpx.HTTPError as exc:
        answer.error = answer.error or f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a server's malformed answer is a finding, not the tool's end
        answer.error = f"malformed answer: {type(exc).__name__}: {exc}"
        answer.status = answer.status or 200
    answer.total_s = time.monotonic() - started
    return answer


async def _send(client: httpx.AsyncClient, side: Side, body: dict[str, Any], answer: Answer, started: float) -> None:
    url = side.api + "/chat/completions"
    if not body["stream"]:
        r = await client.post(url, json=body)
        answer.status = r.status_code
        data = _json(r.text)
        if r.status_code != 200:
            answer.error = _error_text(data, r.text)
            return
        choice = (data.get("choices") or [{}])[0]
        answer.text = (choice.get("message") or {}).get("content") or ""
        answer.finish_reason = choice.get("finish_reason")
        answer.completion_tokens = (data.get("usage") or {}).get("completion_tokens")
        return
    async with client.stream("POST", url, json=body) as r:
        answer.status = r.status_code
        if r.status_code != 200:
            raw = (await r.aread()).decode("utf-8", "replace")
            answer.error = _error_text(_json(raw), raw)
            return
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                answer.done = True
                break
            event = _json(payload)
            if "error" in event:
                answer.error = _error_text(event, payload)
                break
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece and answer.ttft_s is None:
                    answer.ttft_s = time.monotonic() - started
                answer.text += piece
                if choice.get("finish_reason"):
                    answer.finish_reason = choice["finish_reason"]
            usage = event.get("usage")
            if usage:
                answer.completion_tokens = usage.get("completion_tokens")


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error_text(data: dict, raw: str) -> str:
    err = data.get("error")
    if isinstance(err, dict) and err.get("message") is not None:
        return str(err["message"])
    if isinstance(err, str):
        return err
    return raw.strip()[:300] or "(empty body)"


async def model_tokens(client: httpx.AsyncClient, side: Side, model: str) -> tuple[str, ...]:
    """The model's own special tokens where the server says them: llamaslots' /backend/monitor
    does (BOS, EOS); LocalAI's has no such field."""
    try:
        r = await client.get(side.root + "/backend/monitor", params={"model": model})
        tokens = r.json().get("special_tokens") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        tokens = None
    if not isinstance(tokens, list):
        return ()
    return tuple(dict.fromkeys(t for t in tokens if isinstance(t, str) and t.strip()))
