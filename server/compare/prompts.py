"""The prompts file: JSONL of OpenAI chat bodies, or plain lines of text (one user message each)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PromptsError(ValueError):
    """The file cannot be used; the message names the line."""


@dataclass(frozen=True)
class Prompt:
    line: int
    body: dict[str, Any]  # an OpenAI chat body; `model` and `stream` are set per side and pass

    @property
    def title(self) -> str:
        for m in reversed(self.body["messages"]):
            if m.get("role") == "user" and isinstance(m.get("content"), str):
                text = " ".join(m["content"].split())
                return text if len(text) <= 70 else text[:67] + "..."
        return f"line {self.line}"

    @property
    def wants_json(self) -> bool:
        fmt = self.body.get("response_format")
        return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def load_prompts(path: Path) -> list[Prompt]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptsError(f"{path}: cannot read it: {exc}") from None
    prompts: list[Prompt] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                body = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptsError(f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            messages = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise PromptsError(f"{path}:{n}: a JSON line must be a chat body with a non-empty \"messages\" list")
        else:
            # Greedy and seeded, so that two servers on one model can give the same text.
            body = {"messages": [{"role": "user", "content": line}], "temperature": 0, "seed": 42}
        prompts.append(Prompt(n, body))
    if not prompts:
        raise PromptsError(f"{path}: no prompts in it (JSON chat bodies or lines of text; # starts a comment)")
    return prompts
