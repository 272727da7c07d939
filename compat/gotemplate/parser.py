"""Recursive-descent parser from tokens to nodes, following Go's text/template/parse grammar and errors."""

from __future__ import annotations

from typing import NoReturn

from . import lexer as L
from .errors import ParseError
from .gofmt import unquote, unquote_char
from .nodes import (
    ActionNode, BoolNode, BreakNode, ChainNode, CommandNode, CommentNode, ContinueNode, DotNode,
    ElseNode, EndNode, FieldNode, IdentifierNode, IfNode, ListNode, NilNode, NumberNode, PipeNode,
    StringNode, TemplateNode, TextNode, VariableNode,
)

_CMD_START = {
    L.BOOL, L.CHAR_CONST, L.DOT, L.FIELD, L.IDENT, L.NUMBER, L.NIL, L.RAW_STRING, L.STRING,
    L.VARIABLE, L.LPAREN,
}


class Tree:
    """One parsed template (the main one or a {{define}}d one)."""

    __slots__ = ("name", "root")

    def __init__(self, name: str, root: ListNode):
        self.name = name
        self.root = root


def is_empty_tree(n) -> bool:
    if isinstance(n, ListNode):
        return all(is_empty_tree(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return n.text.strip() == ""
    if isinstance(n, CommentNode):
        return True
    return False


class Parser:
    def __init__(self, src: str, name: str, funcs):
        self.name = name
        self.funcs = funcs
        toks = L.tokenize(src)
        # Pad with copies of the final token so backing up after reading it stays consistent.
        self.toks = toks + [toks[-1]] * 4
        self.last = len(self.toks) - 1
        self.i = 0
        self.hi = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.trees: dict[str, Tree] = {}

    # ---- token stream -------------------------------------------------
    def next(self) -> L.Token:
        t = self.toks[self.i]
        if self.i > self.hi:
            self.hi = self.i
        if self.i < self.last:
            self.i += 1
        return t

    def backup(self, n: int = 1) -> None:
        self.i -= n

    def peek(self) -> L.Token:
        if self.i > self.hi:
            self.hi = self.i
        return self.toks[self.i]

    def next_non_space(self) -> L.Token:
        t = self.next()
        while t.kind == L.SPACE:
            t = self.next()
        return t

    def peek_non_space(self) -> L.Token:
        t = self.next_non_space()
        self.backup()
        return t

    # ---- errors ---------------------------------------------------------
    def errorf(self, msg: str) -> NoReturn:
        # Go reports the line of the most recently lexed token (its one-token lookahead).
        line = self.toks[self.hi].line
        raise ParseError(f"template: {self.name}:{line}: {msg}", self.name, line)

    def unexpected(self, tok: L.Token, context: str) -> NoReturn:
        if tok.kind == L.ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            raise ParseError(f"template: {self.name}:{tok.line}: {tok.val}{extra}", self.name, tok.line)
        self.errorf(f"unexpected {tok.describe()} in {context}")

    def expect(self, kind: str, context: str) -> L.Token:
        t = self.next_non_space()
        if t.kind != kind:
            self.unexpected(t, context)
        return t

    # ---- grammar ----------------------------------------------------------
    def parse(self) -> dict[str, Tree]:
        root = ListNode(self.peek().pos, self.peek().line)
        while self.peek().kind != L.EOF:
            if self.peek().kind == L.LEFT_DELIM:
                start = self.i
                self.next()
                if self.next_non_space().kind == "kw:define":
                    self.parse_definition()
                    continue
                self.i = start
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                self.errorf(f"unexpected {n}")
            root.nodes.append(n)
        self.add(Tree(self.name, root))
        return self.trees

    def add(self, tree: Tree) -> None:
        old = self.trees.get(tree.name)
        if old is None or is_empty_tree(old.root):
            self.trees[tree.name] = tree
            return
        if not is_empty_tree(tree.root):
            self.errorf(f"template: multiple definition of template {_q(tree.name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        t = self.next_non_space()
        if t.kind not in (L.STRING, L.RAW_STRING):
            self.unexpected(t, context)
        name = self._unquote(t)
        self.expect(L.RIGHT_DELIM, context)
        saved_vars = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(Tree(name, body))

    def item_list(self):
        lst = ListNode(self.peek_non_space().pos, self.peek_non_space().line)
        while self.peek_non_space().kind != L.EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        t = self.next_non_space()
        if t.kind == L.TEXT:
            return TextNode(t.pos, t.line, t.val)
        if t.kind == L.LEFT_DELIM:
            self.action_line = t.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if t.kind == L.COMMENT:
            # The right delimiter of a comment is consumed by the lexer.
            return CommentNode(t.pos, t.line, t.val)
        self.unexpected(t, "input")

    def action(self):
        t = self.next_non_space()
        k = t.kind
        if k == "kw:block":
            return self.block_control()
        if k == "kw:break":
            return self.break_control(t, "break")
        if k == "kw:continue":
            return self.break_control(t, "continue")
        if k == "kw:else":
            return self.else_control()
        if k == "kw:end":
            tok = self.expect(L.RIGHT_DELIM, "end")
            return EndNode(tok.pos, tok.line)
        if k == "kw:if":
            return self.parse_control("if", allow_else_chain=True)
        if k == "kw:range":
            return self.parse_control("range", allow_else_chain=False)
        if k == "kw:template":
            return self.template_control()
        if k == "kw:with":
            return self.parse_control("with", allow_else_chain=True)
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, tok.line, self.pipeline("command", L.RIGHT_DELIM))

    def break_control(self, t: L.Token, word: str):
        tok = self.next_non_space()
        if tok.kind != L.RIGHT_DELIM:
            self.unexpected(tok, "{{" + word + "}}")
        if self.range_depth == 0:
            self.errorf("{{" + word + "}} outside {{range}}")
        return BreakNode(t.pos, t.line) if word == "break" else ContinueNode(t.pos, t.line)

    def else_control(self):
        peek = self.peek_non_space()
        # "{{else if ...}}" / "{{else with ...}}" are sugar for a nested if/with in the else list.
        if peek.kind in ("kw:if", "kw:with"):
            return ElseNode(peek.pos, peek.line)
        tok = self.expect(L.RIGHT_DELIM, "else")
        return ElseNode(tok.pos, tok.line)

    def parse_control(self, context: str, allow_else_chain: bool):
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, L.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, ElseNode):
                peek = self.peek_non_space()
                if allow_else_chain and peek.kind == "kw:" + context:
                    self.next_non_space()
                    else_list = ListNode(nxt.pos, nxt.line)
                    else_list.nodes.append(self.parse_control(context, True))
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return IfNode(pipe.pos, pipe.line, pipe, body, else_list, context)
        finally:
            del self.vars[mark:]

    def block_control(self):
        context = "block clause"
        tok = self.next_non_space()
        name = self.parse_template_name(tok, context)
        pipe = self.pipeline(context, L.RIGHT_DELIM)
        saved_vars, saved_depth = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        self.vars, self.range_depth = saved_vars, saved_depth
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(Tree(name, body))
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def template_control(self):
        context = "template clause"
        tok = self.next_non_space()
        name = self.parse_template_name(tok, context)
        pipe = None
        if self.next_non_space().kind != L.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, L.RIGHT_DELIM)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def parse_template_name(self, tok: L.Token, context: str) -> str:
        if tok.kind in (L.STRING, L.RAW_STRING):
            return self._unquote(tok)
        self.unexpected(tok, context)

    def pipeline(self, context: str, end: str) -> PipeNode:
        tok = self.peek_non_space()
        pipe = PipeNode(tok.pos, tok.line)
        while True:  # declarations
            v = self.peek_non_space()
            if v.kind != L.VARIABLE:
                break
            self.next_non_space()
            v_index = self.i - 1
            nxt = self.peek_non_space()
            if nxt.kind in (L.ASSIGN, L.DECLARE):
                pipe.is_assign = nxt.kind == L.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.line, [v.val]))
                self.vars.append(v.val)
                break
            if nxt.kind == L.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.line, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in (L.VARIABLE, L.RIGHT_DELIM, L.RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            # Not a declaration: put the variable back.
            self.i = v_index
            break
        while True:
            tok = self.peek_non_space()
            if tok.kind == end:
                self.next_non_space()
                self.check_pipeline(pipe, context)
                return pipe
            if tok.kind in _CMD_START:
                pipe.cmds.append(self.command())
            else:
                self.next_non_space()
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:], start=1):
            first = c.args[0]
            if isinstance(first, (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 1}")

    def command(self) -> CommandNode:
        tok = self.peek_non_space()
        cmd = CommandNode(tok.pos, tok.line)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == L.SPACE:
                continue
            if tok.kind in (L.RIGHT_DELIM, L.RPAREN):
                self.backup()
            elif tok.kind == L.PIPE:
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == L.FIELD:
            first = self.peek()
            fields = []
            while self.peek().kind == L.FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(first.pos, first.line, node.ident + fields)
            if isinstance(node, VariableNode):
                return VariableNode(first.pos, first.line, node.ident + fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {_q(str(node))}")
            return ChainNode(first.pos, first.line, node, fields)
        return node

    def term(self):
        t = self.next_non_space()
        k = t.kind
        if k == L.IDENT:
            if t.val not in self.funcs:
                self.errorf(f"function {_q(t.val)} not defined")
            return IdentifierNode(t.pos, t.line, t.val)
        if k == L.DOT:
            return DotNode(t.pos, t.line)
        if k == L.NIL:
            return NilNode(t.pos, t.line)
        if k == L.VARIABLE:
            return self.use_var(t)
        if k == L.FIELD:
            return FieldNode(t.pos, t.line, [t.val[1:]])
        if k == L.BOOL:
            return BoolNode(t.pos, t.line, t.val == "true")
        if k in (L.CHAR_CONST, L.NUMBER):
            return self.number(t)
        if k == L.LPAREN:
            return self.pipeline("parenthesized pipeline", L.RPAREN)
        if k in (L.STRING, L.RAW_STRING):
            return StringNode(t.pos, t.line, t.val, self._unquote(t))
        self.backup()
        return None

    def use_var(self, t: L.Token) -> VariableNode:
        name = t.val
        if name not in self.vars:
            self.errorf(f"undefined variable {_q(name)}")
        return VariableNode(t.pos, t.line, [name])

    def number(self, t: L.Token) -> NumberNode:
        n = NumberNode(t.pos, t.line, t.val)
        if t.kind == L.CHAR_CONST:
            try:
                r = unquote_char(t.val)
            except ValueError as e:
                self.errorf(str(e))
            n.is_int = n.is_float = n.is_rune = True
            n.int_value = r
            n.float_value = float(r)
            return n
        parsed = parse_go_number(t.val)
        if parsed is None:
            self.errorf(f"illegal number syntax: {_q(t.val)}")
        if parsed == "overflow":
            self.errorf(f"integer overflow: {_q(t.val)}")
        if parsed == "complex":
            self.errorf(f"illegal number syntax: {_q(t.val)}")
        ival, fval = parsed
        if ival is not None:
            n.is_int = True
            n.int_value = ival
        if fval is not None:
            n.is_float = True
            n.float_value = fval
        return n

    def _unquote(self, t: L.Token) -> str:
        try:
            return unquote(t.val)
        except ValueError:
            self.errorf("invalid syntax")


def parse_go_number(text: str):
    """(int or None, float or None) as Go's parse.NumberNode sees the literal; None if illegal."""
    if text.endswith("i"):
        return "complex"
    body = text
    sign = 1
    if body and body[0] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    ival = None
    try:
        if "_" in body and not _underscores_ok(body):
            raise ValueError
        low = body.lower()
        if low.startswith(("0x", "0o", "0b")) and "." not in low and "p" not in low:
            ival = sign * int(body, 0)
        elif low.isdigit() or (low.replace("_", "").isdigit() and "_" in low):
            digits = low.replace("_", "")
            if len(digits) > 1 and digits[0] == "0":
                ival = sign * int(digits, 8)  # Go's base-0 leading-zero octal
            else:
                ival = sign * int(digits)
    except ValueError:
        ival = None
    if ival is not None:
        if not (-(1 << 63) <= ival < (1 << 64)):
            return "overflow"
        if ival >= (1 << 63):
            return None if sign < 0 else (None, float(ival))
        return ival, float(ival)
    try:
        if body.lower().startswith("0x"):
            f = float.fromhex(body.replace("_", ""))
        else:
            clean = body.replace("_", "")
            if not any(c in clean for c in ".eE") or not all(c in "0123456789.eE+-" for c in clean):
                return None
            f = float(clean)
    except ValueError:
        return None
    f *= sign
    if not any(c in text for c in ".eEpP"):
        return "overflow"
    iv = int(f) if f == f and abs(f) != float("inf") and float(int(f)) == f else None
    return iv, f


def _underscores_ok(body: str) -> bool:
    return "__" not in body and not body.endswith("_") and not body.startswith("_")


def _q(s: str) -> str:
    from .gofmt import quote
    return quote(s)


def parse_trees(src: str, name: str, funcs) -> dict[str, Tree]:
    return Parser(src, name, funcs).parse()
