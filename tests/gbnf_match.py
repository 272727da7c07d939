"""A small GBNF recognizer for tests: does a grammar accept a string? Written from llama.cpp's
grammar syntax (grammars/README.md), independent of the code that writes our grammars.

Supports what those grammars use: "literals" with escapes, [classes] with ranges and ^, `.`,
rule references, ( groups ), |, and the postfix * + ? {m} {m,} {m,n}. Parsing is by sets of
end positions with memoized rules, so it needs no left recursion (GBNF grammars have none).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

_ESC = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "^": "^"}


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Cls:
    ranges: tuple[tuple[int, int], ...]
    negated: bool


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Rep:
    node: "Node"
    lo: int
    hi: int | None


@dataclass(frozen=True)
class Seq:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Alt:
    options: tuple["Node", ...]


Node = Union[Lit, Cls, Ref, Rep, Seq, Alt]


class _Parser:
    def __init__(self, text: str):
        self.t, self.i = text, 0

    def ws(self) -> None:
        while self.i < len(self.t):
            if self.t[self.i] in " \t\n\r":
                self.i += 1
            elif self.t[self.i] == "#":
                while self.i < len(self.t) and self.t[self.i] != "\n":
                    self.i += 1
            else:
                return

    def code(self) -> int:
        """One character, escapes decoded, as a code point (\\U may name ones past Unicode)."""
        c = self.t[self.i]
        self.i += 1
        if c != "\\":
            return ord(c)
        e = self.t[self.i]
        self.i += 1
        if e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            code = int(self.t[self.i:self.i + n], 16)
            self.i += n
            return code
        return ord(_ESC[e])

    def char(self) -> str:
        return chr(self.code())

    def alt(self) -> Node:
        options = [self.seq()]
        while True:
            self.ws()
            if self.i < len(self.t) and self.t[self.i] == "|":
                self.i += 1
                options.append(self.seq())
            else:
                return options[0] if len(options) == 1 else Alt(tuple(options))

    def seq(self) -> Node:
        items: list[Node] = []
        while True:
            self.ws()
            if self.i >= len(self.t) or self.t[self.i] in "|)":
                return items[0] if len(items) == 1 else Seq(tuple(items))
            if re.match(r"[A-Za-z0-9_-]+\s*::=", self.t[self.i:]):
                return items[0] if len(items) == 1 else Seq(tuple(items))
            items.append(self.postfix(self.atom()))

    def atom(self) -> Node:
        c = self.t[self.i]
        if c == '"':
            self.i += 1
            out = ""
            while self.t[self.i] != '"':
                out += self.char()
            self.i += 1
            return Lit(out)
        if c == "[":
            self.i += 1
            negated = self.t[self.i] == "^"
            if negated:
                self.i += 1
            ranges = []
            while self.t[self.i] != "]":
                lo = self.code()
                hi = lo
                if self.t[self.i] == "-" and self.t[self.i + 1] != "]":
                    self.i += 1
                    hi = self.code()
                ranges.append((lo, hi))
            self.i += 1
            return Cls(tuple(ranges), negated)
        if c == ".":
            self.i += 1
            return Cls(((0, 0x10FFFF),), False)
        if c == "(":
            self.i += 1
            node = self.alt()
            self.ws()
            assert self.t[self.i] == ")", self.t[self.i:self.i + 20]
            self.i += 1
            return node
        m = re.match(r"[A-Za-z0-9_-]+", self.t[self.i:])
        assert m, f"cannot parse at {self.t[self.i:self.i + 30]!r}"
        self.i += m.end()
        return Ref(m.group())

    def postfix(self, node: Node) -> Node:
        while self.i < len(self.t):
            c = self.t[self.i]
            if c in "*+?":
                self.i += 1
                node = Rep(node, 1 if c == "+" else 0, 1 if c == "?" else None)
            elif c == "{":
                m = re.match(r"\{(\d+)(,(\d*))?\}", self.t[self.i:])
                assert m
                self.i += m.end()
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                node = Rep(node, lo, hi)
            else:
                return node
        return node


def parse(gbnf: str) -> dict[str, Node]:
    rules: dict[str, Node] = {}
    p = _Parser(gbnf)
    while True:
        p.ws()
        if p.i >= len(p.t):
            return rules
        m = re.match(r"([A-Za-z0-9_-]+)\s*::=", p.t[p.i:])
        assert m, f"expected a rule at {p.t[p.i:p.i + 30]!r}"
        p.i += m.end()
        rules[m.group(1)] = p.alt()


def accepts(gbnf: str, text: str, root: str = "root") -> bool:
    rules = parse(gbnf)

    @lru_cache(maxsize=None)
    def rule(name: str, pos: int) -> frozenset[int]:
        return match(rules[name], pos)

    def match(node: Node, pos: int) -> frozenset[int]:
        if isinstance(node, Lit):
            return frozenset([pos + len(node.text)]) if text.startswith(node.text, pos) else frozenset()
        if isinstance(node, Cls):
            if pos >= len(text):
                return frozenset()
            inside = any(lo <= ord(text[pos]) <= hi for lo, hi in node.ranges)
            return frozenset([pos + 1]) if inside != node.negated else frozenset()
        if isinstance(node, Ref):
            return rule(node.name, pos)
        if isinstance(node, Seq):
            ends = frozenset([pos])
            for item in node.items:
                ends = frozenset(e for p in ends for e in match(item, p))
                if not ends:
                    break
            return ends
        if isinstance(node, Alt):
            return frozenset(e for o in node.options for e in match(o, pos))
        assert isinstance(node, Rep)
        out = set([pos]) if node.lo == 0 else set()
        frontier, seen, count = {pos}, set(), 0
        while frontier and (node.hi is None or count < node.hi):
            count += 1
            nxt = {e for p in frontier for e in match(node.node, p)}
            if count >= node.lo:
                out |= nxt
            # Unbounded: a position already reached at a count past `lo` adds nothing new.
            pruning = node.hi is None and count >= node.lo
            frontier = nxt - seen if pruning else nxt
            if pruning:
                seen |= nxt
        return frozenset(out)

    return len(text) in rule(root, 0)
