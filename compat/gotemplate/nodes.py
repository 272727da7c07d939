"""Parse-tree node types of a Go template; str(node) renders like Go's Node.String() (used in errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Node:
    __slots__ = ()
    pos: int
    line: int


@dataclass(slots=True, eq=False)
class ListNode(Node):
    pos: int
    line: int
    nodes: list = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclass(slots=True, eq=False)
class TextNode(Node):
    pos: int
    line: int
    text: str

    def __str__(self) -> str:
        from .gofmt import quote
        return quote(self.text)


@dataclass(slots=True, eq=False)
class CommentNode(Node):
    pos: int
    line: int
    text: str

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


@dataclass(slots=True, eq=False)
class VariableNode(Node):
    pos: int
    line: int
    ident: list  # ["$x", "field", ...]

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(slots=True, eq=False)
class DotNode(Node):
    pos: int
    line: int

    def __str__(self) -> str:
        return "."


@dataclass(slots=True, eq=False)
class NilNode(Node):
    pos: int
    line: int

    def __str__(self) -> str:
        return "nil"


@dataclass(slots=True, eq=False)
class FieldNode(Node):
    pos: int
    line: int
    ident: list  # field names without dots

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass(slots=True, eq=False)
class IdentifierNode(Node):
    pos: int
    line: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(slots=True, eq=False)
class BoolNode(Node):
    pos: int
    line: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(slots=True, eq=False)
class NumberNode(Node):
    pos: int
    line: int
    text: str
    is_int: bool = False
    is_float: bool = False
    int_value: int = 0
    float_value: float = 0.0
    is_rune: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True, eq=False)
class StringNode(Node):
    pos: int
    line: int
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(slots=True, eq=False)
class ChainNode(Node):
    pos: int
    line: int
    node: Node
    fields: list

    def __str__(self) -> str:
        s = str(self.node)
        if isinstance(self.node, PipeNode):
            s = "(" + s + ")"
        return s + "".join("." + f for f in self.fields)


@dataclass(slots=True, eq=False)
class CommandNode(Node):
    pos: int
    line: int
    args: list = field(default_factory=list)

    def __str__(self) -> str:
        parts = []
        for a in self.args:
            if isinstance(a, PipeNode):
                parts.append("(" + str(a) + ")")
            else:
                parts.append(str(a))
        return " ".join(parts)


@dataclass(slots=True, eq=False)
class PipeNode(Node):
    pos: int
    line: int
    is_assign: bool = False
    decl: list = field(default_factory=list)   # VariableNodes
    cmds: list = field(default_factory=list)   # CommandNodes

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


@dataclass(slots=True, eq=False)
class ActionNode(Node):
    pos: int
    line: int
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(slots=True, eq=False)
class IfNode(Node):
    pos: int
    line: int
    pipe: PipeNode
    list: ListNode
    else_list: Any = None
    keyword: str = "if"   # "if" | "with" | "range"

    def __str__(self) -> str:
        s = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


@dataclass(slots=True, eq=False)
class TemplateNode(Node):
    pos: int
    line: int
    name: str
    pipe: Any = None

    def __str__(self) -> str:
        from .gofmt import quote
        if self.pipe is None:
            return "{{template " + quote(self.name) + "}}"
        return "{{template " + quote(self.name) + " " + str(self.pipe) + "}}"


@dataclass(slots=True, eq=False)
class BreakNode(Node):
    pos: int
    line: int

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(slots=True, eq=False)
class ContinueNode(Node):
    pos: int
    line: int

    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(slots=True, eq=False)
class EndNode(Node):
    pos: int
    line: int

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(slots=True, eq=False)
class ElseNode(Node):
    pos: int
    line: int

    def __str__(self) -> str:
        return "{{else}}"
