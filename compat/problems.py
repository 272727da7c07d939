"""Diagnostics about config files: one Problem per finding, ConfigError when errors block a start."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

Level = Literal["error", "warning", "info"]

_LEVEL_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Problem:
    """One finding in a config file. line/col are 1-based; 0 means "whole file"."""

    file: Path | None
    line: int
    col: int
    level: Level
    message: str
    hint: str = ""
    # An error LocalAI itself loads the model with (and fails on later, per request): `run`
    # refuses to start on it, but tools that show what LocalAI would do keep the model.
    localai_loads: bool = False

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else "<config>"
        if self.line:
            where += f":{self.line}"
            if self.col:
                where += f":{self.col}"
        text = f"{where}: {self.level}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def sort_key(self) -> tuple:
        return (str(self.file or ""), self.line, self.col, _LEVEL_ORDER[self.level], self.message)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "error"]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "warning"]


class ConfigError(Exception):
    """Raised by strict loading: the configs have errors and the server must not start."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=Problem.sort_key)
        found = errors(self.problems)
        lines = [f"{len(found)} error(s) in model configs:"]
        lines += [f"  {p}" for p in found]
        also = warnings(self.problems)
        if also:
            lines.append(f"and {len(also)} warning(s):")
            lines += [f"  {p}" for p in also]
        super().__init__("\n".join(lines))
