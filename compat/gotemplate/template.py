"""Template: parse Go template text once (with builtins + sprig), execute it many times (thread-safe)."""

from __future__ import annotations

import functools
from typing import Any

from . import nodes
from .errors import ExecError, ParseError, TemplateError
from .exec import State
from .funcs import BUILTINS, FuncSpec
from .parser import parse_trees
from .sprig import SPRIG
from .values import MISSING

# Sprig's functions shadow same-named builtins (LocalAI adds sprig.FuncMap() to text/template).
DEFAULT_FUNCS: dict[str, FuncSpec] = {**BUILTINS, **SPRIG}


class Template:
    """A parsed Go template and the templates it {{define}}s; immutable after parse."""

    __slots__ = ("name", "text", "trees", "funcs", "_src_bytes")

    def __init__(self, name: str, text: str, trees: dict, funcs: dict[str, FuncSpec]):
        self.name = name
        self.text = text
        self.trees = trees
        self.funcs = funcs
        self._src_bytes: bytes | None = None

    def execute(self, data: Any) -> str:
        """Render with `data` as dot; raises ExecError like Go's Execute."""
        tree = self.trees.get(self.name)
        state = State(self, self.name)
        if tree is None:
            raise ExecError(f'template: {self.name}: "{self.name}" is an incomplete or empty template')
        if data is None:  # Execute(w, nil): dot is an invalid value, fields of it print <no value>
            data = MISSING
        state.vars.append(["$", data, False])
        try:
            state.walk(data, tree.root)
        except RecursionError:
            raise ExecError(f"template: {self.name}: exceeded maximum template depth (100000)") from None
        return "".join(state.out)

    def error_context(self, node) -> tuple[str, str]:
        """Go's ErrorContext: ("name:line:col", the node's text)."""
        b = self._src_bytes
        if b is None:
            b = self._src_bytes = self.text.encode("utf-8", "surrogateescape")
        pos = node.pos
        head = b[:pos]
        nl = head.rfind(b"\n")
        col = pos if nl < 0 else pos - (nl + 1)
        line = 1 + head.count(b"\n")
        return f"{self.name}:{line}:{col}", str(node)


    def root_fields(self) -> list[tuple[str, int, int]]:
        """(field, line, col) of every `.Field` (and `$.Field`) read from the data the template
        is executed with, in any branch, whether or not it runs; col is Go's 0-based byte column.

        Inside `range` and `with` bodies dot is something else, so only `$.Field` counts there.
        """
        found: list[tuple[str, int, int]] = []

        def where(node) -> tuple[int, int]:
            location, _ = self.error_context(node)
            _, line, col = location.rsplit(":", 2)
            return int(line), int(col)

        def pipe(p, dot_is_root: bool) -> None:
            if p is None:
                return
            for cmd in p.cmds:
                for arg in cmd.args:
                    operand(arg, dot_is_root)

        def operand(arg, dot_is_root: bool) -> None:
            if isinstance(arg, nodes.FieldNode):
                if dot_is_root:
                    found.append((arg.ident[0], *where(arg)))
            elif isinstance(arg, nodes.VariableNode):
                if arg.ident[0] == "$" and len(arg.ident) > 1:
                    found.append((arg.ident[1], *where(arg)))
            elif isinstance(arg, nodes.ChainNode):
                operand(arg.node, dot_is_root)
            elif isinstance(arg, nodes.PipeNode):
                pipe(arg, dot_is_root)

        def walk(node, dot_is_root: bool) -> None:
            if node is None:
                return
            if isinstance(node, nodes.ListNode):
                for child in node.nodes:
                    walk(child, dot_is_root)
            elif isinstance(node, nodes.ActionNode):
                pipe(node.pipe, dot_is_root)
            elif isinstance(node, nodes.IfNode):
                pipe(node.pipe, dot_is_root)
                walk(node.list, dot_is_root and node.keyword == "if")
                walk(node.else_list, dot_is_root)
            elif isinstance(node, nodes.TemplateNode):
                pipe(node.pipe, dot_is_root)

        tree = self.trees.get(self.name)
        if tree is not None:
            walk(tree.root, True)
        return found


def parse(text: str, name: str = "prompt", funcs: dict[str, FuncSpec] | None = None) -> Template:
    """Parse Go template text; raises ParseError with Go's message ("template: name:line: ...").

    Templates are immutable, so parses with the default function map are memoized.
    """
    if not isinstance(text, str):
        raise TypeError(f"template text must be str, not {type(text).__name__}")
    if funcs is None:
        return _parse_default(text, name)
    return _parse(text, name, funcs)


def _parse(text: str, name: str, funcs: dict[str, FuncSpec]) -> Template:
    try:
        trees = parse_trees(text, name, funcs)
    except RecursionError:
        raise ParseError(f"template: {name}:1: max depth exceeded", name, 1) from None
    return Template(name, text, trees, funcs)


@functools.lru_cache(maxsize=256)
def _parse_default(text: str, name: str) -> Template:
    return _parse(text, name, DEFAULT_FUNCS)


__all__ = ["Template", "parse", "TemplateError", "ParseError", "ExecError"]
