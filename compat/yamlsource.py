"""Parse YAML config text into position-carrying nodes, turning syntax errors into teaching Problems."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compat.problems import Problem

# `key: -` at the end of a line: the operator meant a block scalar (`|-`), YAML sees a list item.
_BARE_DASH = re.compile(r"^(?P<lead>\s*(?:-\s+)?)(?P<key>[^\s#:][^#:]*?):(?P<gap>[ \t]+)-(?P<tail>[ \t]*(?:#.*)?)$")

# Enough to list every `key: -` in a file without looping forever on a pathological one.
_MAX_REPAIRS = 200


@dataclass
class ParsedYaml:
    """The first document of a file as a node tree (None when empty), plus what went wrong.

    `failed` means LocalAI could not parse the file at all and skips every model in it. When
    all syntax errors were `key: -` lines, `root` is the tree of the repaired text, so later
    checks can still report the file's other problems; nothing from it may be served.
    """

    root: yaml.Node | None
    failed: bool
    problems: list[Problem] = field(default_factory=list)


def parse_yaml(text: str, file: Path | None) -> ParsedYaml:
    problems: list[Problem] = []
    lines = text.split("\n")
    repaired = False
    for _ in range(_MAX_REPAIRS):
        try:
            root = _compose_first(text, file, problems)
        except yaml.MarkedYAMLError as exc:
            problem, fixed_line = _diagnose(exc, lines, file)
            problems.append(problem)
            if fixed_line is None:
                return ParsedYaml(None, True, problems)
            line_no, new_text = fixed_line
            lines[line_no] = new_text
            text = "\n".join(lines)
            repaired = True
            continue
        except yaml.YAMLError as exc:  # errors without a position (e.g. bad encoding)
            problems.append(Problem(file, 0, 0, "error", f"YAML error: {exc}"))
            return ParsedYaml(None, True, problems)
        return ParsedYaml(root, repaired, problems)
    return ParsedYaml(None, True, problems)


def _compose_first(text: str, file: Path | None, problems: list[Problem]) -> yaml.Node | None:
    docs = yaml.compose_all(text, Loader=yaml.SafeLoader)
    first = next(docs, None)
    try:
        more = next(docs, None) is not None
    except yaml.YAMLError:
        more = True
    if more:
        problems.append(Problem(
            file, 0, 0, "warning",
            "the file holds more than one YAML document (`---`); only the first is read",
            "put all models in one list in the first document",
        ))
    return first


def _diagnose(exc: yaml.MarkedYAMLError, lines: list[str], file: Path | None):
    """Problem for a syntax error, and (line index, repaired text) when it is a `key: -` line."""
    mark = exc.problem_mark or exc.context_mark
    line_idx = mark.line if mark else 0
    col = (mark.column + 1) if mark else 0
    what = exc.problem or "syntax error"
    if exc.context:
        what = f"{what} ({exc.context})"
    source_line = lines[line_idx] if 0 <= line_idx < len(lines) else ""
    dash = _BARE_DASH.match(source_line)
    if dash and "sequence entries" in (exc.problem or ""):
        key = dash.group("key").strip()
        message = (
            f"`{key}: -` does not parse: a bare `-` starts a YAML list item, which cannot "
            f"follow `{key}:` on the same line; the whole file fails to parse, and LocalAI "
            f"skips every model in it"
        )
        hint = (
            f"for multi-line text write `{key}: |-` (block scalar, no final newline) or "
            f"`{key}: |` (keeps one final newline) and indent the lines below it"
        )
        fixed = (
            dash.group("lead") + dash.group("key") + ":" + dash.group("gap") + "|-" + dash.group("tail")
        )
        return Problem(file, line_idx + 1, col, "error", message, hint), (line_idx, fixed)
    return Problem(file, line_idx + 1, col, "error", f"YAML syntax error: {what}", _hint_for(what)), None


def _hint_for(what: str) -> str:
    if "'\\t'" in what or "\t" in what:
        return "YAML indentation must use spaces, not tabs"
    if "mapping values are not allowed" in what:
        return "quote a value that contains ': ', or check the indentation of this key"
    if "sequence entries are not allowed" in what:
        return "a `-` list item must start its own line, indented under its key"
    if "expected <block end>" in what:
        return "check the indentation: keys of one model must line up"
    if "quoted scalar" in what:
        return "a quote is not closed"
    return ""


# --- node helpers -----------------------------------------------------------------------------

def pos(node: yaml.Node) -> tuple[int, int]:
    """1-based (line, column) of a node."""
    return node.start_mark.line + 1, node.start_mark.column + 1


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def to_python(node: yaml.Node):
    """Plain Python value of a subtree, for fields carried as-is."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()
