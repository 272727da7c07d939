"""Executes a parsed Go template tree against Python data with Go's evaluation rules and error messages."""

from __future__ import annotations

from typing import Any, NoReturn

from .errors import ExecError
from .funcs import FuncError, FuncSpec, T_ANY, T_BOOL, T_FLOAT, T_INT, T_LIST, T_MAP, T_STR, T_VALUE, TYPE_NAMES
from .gofmt import format_value
from .nodes import (
    ActionNode, BoolNode, BreakNode, ChainNode, CommandNode, CommentNode, ContinueNode, DotNode,
    FieldNode, IdentifierNode, IfNode, ListNode, NilNode, NumberNode, PipeNode, StringNode,
    TemplateNode, TextNode, VariableNode,
)
from .values import MISSING, Int64, IntList, StringList, go_type_name, is_struct, struct_info, truth
from .gofmt import sorted_keys

MAX_EXEC_DEPTH = 100000
_NO_FINAL = object()   # Go's missingVal: no piped-in value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _iface_elem(v) -> bool:
    # Lists and maps from JSON-like data are []interface{}/map[string]interface{}; typed struct
    # slices ([]functions.Function) hold concrete structs.
    return not is_struct(v)


class State:
    __slots__ = ("tmpl", "tname", "node", "vars", "out", "depth", "dot_iface")

    def __init__(self, tmpl, tname: str):
        self.tmpl = tmpl
        self.tname = tname
        self.node: Any = None
        self.vars: list[list] = []   # [name, value, iface]
        self.out: list[str] = []
        self.depth = 0
        self.dot_iface = False

    # ---- errors -------------------------------------------------------------
    def errorf(self, msg: str) -> NoReturn:
        node = self.node
        if node is None:
            raise ExecError(f"template: {self.tname}: {msg}")
        location, context = self.tmpl.error_context(node)
        _, _, where = location.rpartition(self.tname + ":")
        line, _, col = where.partition(":")
        raise ExecError(f'template: {location}: executing "{self.tname}" at <{context}>: {msg}',
                        int(line) if line.isdigit() else 0, int(col) if col.isdigit() else 0)

    # ---- variables ------------------------------------------------------
    def var_value(self, name: str):
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1], entry[2]
        self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value, iface: bool = False) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                entry[2] = iface
                return
        self.errorf(f"undefined variable: {name}")

    # ---- walking ------------------------------------------------------------
    def walk(self, dot, node) -> None:
        t = type(node)
        if t is TextNode:
            self.out.append(node.text)
        elif t is ActionNode:
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.node = node
                self.out.append(self.printable(val))
        elif t is ListNode:
            for n in node.nodes:
                self.walk(dot, n)
        elif t is IfNode:
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif t is CommentNode:
            pass
        elif t is BreakNode:
            raise _Break()
        elif t is ContinueNode:
            raise _Continue()
        elif t is TemplateNode:
            self.walk_template(dot, node)
        else:
            self.errorf(f"unknown node: {node}")

    def printable(self, v) -> str:
        if v is MISSING or v is None:
            return "<no value>"
        if type(v) is str:
            return v
        if callable(v) and not is_struct(v):
            self.errorf(f"can't print {self.node} of type {go_type_name(v)}")
        return format_value(v)

    def walk_if_or_with(self, dot, node: IfNode) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if truth(val):
                if node.keyword == "with":
                    saved = self.dot_iface
                    self.dot_iface = False
                    try:
                        self.walk(val, node.list)
                    finally:
                        self.dot_iface = saved
                else:
                    self.walk(dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, node: IfNode) -> None:
        self.node = node
        mark0 = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            mark = len(self.vars)
            decl = node.pipe.decl
            nd = len(decl)

            def one(index, elem, iface):
                if nd:
                    if node.pipe.is_assign:
                        if nd > 1:
                            self.set_var(decl[0].ident[0], index)
                            self.set_var(decl[1].ident[0], elem, iface)
                        else:
                            self.set_var(decl[0].ident[0], elem, iface)
                    else:
                        self.vars[-1][1] = elem
                        self.vars[-1][2] = iface
                        if nd > 1:
                            self.vars[-2][1] = index
                            self.vars[-2][2] = False
                saved = self.dot_iface
                self.dot_iface = iface
                try:
                    self.walk(elem, node.list)
                except _Continue:
                    pass
                finally:
                    self.dot_iface = saved
                    del self.vars[mark:]

            t = type(val)
            iterated = False
            try:
                if t is list or t is tuple or isinstance(val, (list, tuple)):
                    concrete = t is StringList or t is IntList
                    for i, e in enumerate(val):
                        iterated = True
                        one(i, e, not concrete and _iface_elem(e))
                elif t is dict or isinstance(val, dict):
                    for k in sorted_keys(val):
                        iterated = True
                        e = val[k]
                        one(k, e, _iface_elem(e))
                elif t is int or t is Int64:
                    if nd > 1:
                        self.errorf("can't use " + str(val) + " to iterate over more than one variable")
                    for i in range(val):
                        iterated = True
                        one(i, i, False)
                elif val is MISSING or val is None:
                    pass
                else:
                    self.errorf(f"range can't iterate over {format_value(val)}")
            except _Break:
                pass
            if not iterated and node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark0:]

    def walk_template(self, dot, node: TemplateNode) -> None:
        self.node = node
        tree = self.tmpl.trees.get(node.name)
        if tree is None:
            self.errorf(f"template {_q(node.name)} not defined")
        if self.depth >= MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        new_dot = MISSING if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        sub = State(self.tmpl, node.name)
        sub.out = self.out
        sub.depth = self.depth + 1
        sub.vars = [["$", new_dot, False]]
        try:
            sub.walk(new_dot, tree.root)
        except RecursionError:
            self.node = node
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")

    # ---- pipelines ----------------------------------------------------------
    def eval_pipeline(self, dot, pipe: PipeNode):
        self.node = pipe
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            # Go unwraps interface values after each command; a nil interface becomes invalid.
            if value is None:
                value = MISSING
        for v in pipe.decl:
            name = v.ident[0]
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value, False])
        return value

    def not_a_function(self, args, final) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot, cmd: CommandNode, final):
        first = cmd.args[0]
        t = type(first)
        if t is FieldNode:
            return self.eval_field_node(dot, first, cmd.args, final)[0]
        if t is ChainNode:
            return self.eval_chain_node(dot, first, cmd.args, final)[0]
        if t is IdentifierNode:
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if t is PipeNode:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if t is VariableNode:
            return self.eval_variable_node(dot, first, cmd.args, final)[0]
        self.node = first
        self.not_a_function(cmd.args, final)
        if t is BoolNode:
            return first.value
        if t is DotNode:
            return dot
        if t is NilNode:
            self.errorf("nil is not a command")
        if t is NumberNode:
            return self.ideal_constant(first)
        if t is StringNode:
            return first.text
        self.errorf(f"can't evaluate command {_q(str(first))}")

    def ideal_constant(self, c: NumberNode):
        self.node = c
        text = c.text
        if c.is_float and not c.is_rune and not _is_hex_int(text) and any(ch in text for ch in ".eEpP"):
            return c.float_value
        if c.is_int:
            if not (-(1 << 63) <= c.int_value < (1 << 63)):
                self.errorf(f"{text} overflows int")
            return c.int_value
        self.errorf(f"{text} overflows int")

    def eval_field_node(self, dot, field: FieldNode, args, final):
        self.node = field
        return self.eval_field_chain(dot, dot, self.dot_iface, field, field.ident, args, final)

    def eval_chain_node(self, dot, chain: ChainNode, args, final):
        self.node = chain
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, T_ANY, chain.node)
        if pipe is None:
            pipe = MISSING
        return self.eval_field_chain(dot, pipe, False, chain, chain.fields, args, final)

    def eval_variable_node(self, dot, var: VariableNode, args, final):
        self.node = var
        value, iface = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value, iface
        return self.eval_field_chain(dot, value, iface, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, iface, node, ident, args, final):
        n = len(ident)
        for i in range(n - 1):
            receiver, iface = self.eval_field(ident[i], node, (), _NO_FINAL, receiver, iface)
        return self.eval_field(ident[n - 1], node, args, final, receiver, iface)

    def eval_field(self, name, node, args, final, receiver, iface):
        if receiver is MISSING:
            return MISSING, False
        has_args = len(args) > 1 or final is not _NO_FINAL
        t = type(receiver)
        if t is dict:
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            v = receiver.get(name, MISSING)
            return v, v is not MISSING and _iface_elem(v)
        typ = "interface {}" if iface else go_type_name(receiver)
        if receiver is None:
            self.errorf(f"nil pointer evaluating {typ}.{name}")
        if is_struct(receiver):
            info = struct_info(t)
            attr = info.fields.get(name)
            if attr is not None:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                v = getattr(receiver, attr)
                if v is None:
                    v = info.nil_as[attr]
                return v, info.iface[attr]
        if isinstance(receiver, dict):  # a nil map from a typed struct field, or a dict subclass
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            v = receiver.get(name, MISSING)
            return v, v is not MISSING and _iface_elem(v)
        self.errorf(f"can't evaluate field {name} in type {typ}")

    # ---- function calls -------------------------------------------------
    def eval_function(self, dot, node: IdentifierNode, cmd, args, final):
        self.node = node
        name = node.name
        spec = self.tmpl.funcs.get(name)
        if spec is None:
            self.errorf(f"{_q(name)} is not a defined function")
        return self.eval_call(dot, spec, cmd, name, args, final)

    def eval_call(self, dot, spec: FuncSpec, node, name, args, final):
        args = args[1:]  # args[0] is the function's own name
        nargs = len(args)
        num_in = nargs + (0 if final is _NO_FINAL else 1)
        params = spec.params
        nfixed = len(params)
        if spec.variadic is not None:
            if num_in < nfixed:
                self.errorf(f"wrong number of args for {name}: want at least {nfixed} got {nargs}")
        elif num_in != nfixed:
            self.errorf(f"wrong number of args for {name}: want {nfixed} got {num_in}")
        if spec.lazy:  # and/or: evaluate operands only as far as needed
            v = MISSING
            want = name == "or"
            for a in args:
                v = self.eval_arg(dot, T_VALUE, a)
                if truth(v) == want:
                    return v
            if final is not _NO_FINAL:
                v = final
            return v
        argv = []
        i = 0
        while i < nfixed and i < nargs:
            argv.append(self.eval_arg(dot, params[i], args[i]))
            i += 1
        if spec.variadic is not None:
            vt = spec.variadic
            while i < nargs:
                argv.append(self.eval_arg(dot, vt, args[i]))
                i += 1
        if final is not _NO_FINAL:
            if spec.variadic is not None and num_in - 1 >= nfixed:
                t = spec.variadic
            else:
                t = params[num_in - 1]
            argv.append(self.validate_type(final, False, t))
        assert spec.fn is not None, "and/or are evaluated by the executor"
        try:
            return spec.fn(*argv)
        except FuncError as e:
            self.node = node
            self.errorf(f"error calling {name}: {e}")
        except RecursionError:
            raise
        except ExecError:
            raise
        except Exception as e:  # Go recovers a panicking function into an "error calling" error
            self.node = node
            msg = "runtime error: integer divide by zero" if isinstance(e, ZeroDivisionError) else str(e)
            self.errorf(f"error calling {name}: {msg}")

    def eval_arg(self, dot, typ: str, n):
        self.node = n
        t = type(n)
        if t is DotNode:
            return self.validate_type(dot, self.dot_iface, typ)
        if t is NilNode:
            if typ in (T_ANY, T_LIST, T_MAP):
                return None
            if typ == T_VALUE:
                return MISSING
            self.errorf(f"cannot assign nil to {TYPE_NAMES[typ]}")
        if t is FieldNode:
            v, iface = self.eval_field_node(dot, n, (n,), _NO_FINAL)
            return self.validate_type(v, iface, typ)
        if t is VariableNode:
            v, iface = self.eval_variable_node(dot, n, (), _NO_FINAL)
            return self.validate_type(v, iface, typ)
        if t is PipeNode:
            return self.validate_type(self.eval_pipeline(dot, n), False, typ)
        if t is IdentifierNode:
            return self.validate_type(self.eval_function(dot, n, n, (n,), _NO_FINAL), False, typ)
        if t is ChainNode:
            v, iface = self.eval_chain_node(dot, n, (), _NO_FINAL)
            return self.validate_type(v, iface, typ)
        if typ == T_BOOL:
            if t is BoolNode:
                return n.value
            self.errorf(f"expected bool; found {n}")
        if typ == T_INT:
            if t is NumberNode and n.is_int:
                return n.int_value
            self.errorf(f"expected integer; found {n}")
        if typ == T_FLOAT:
            if t is NumberNode and n.is_float:
                return n.float_value
            self.errorf(f"expected float; found {n}")
        if typ == T_STR:
            if t is StringNode:
                return n.text
            self.errorf(f"expected string; found {n}")
        if typ == T_ANY or typ == T_VALUE:
            if t is BoolNode:
                return n.value
            if t is NumberNode:
                return self.ideal_constant(n)
            if t is StringNode:
                return n.text
        self.errorf(f"can't handle {n} for arg of type {TYPE_NAMES[typ]}")

    def validate_type(self, value, iface: bool, typ: str):
        if value is MISSING:
            if typ == T_VALUE:
                return MISSING
            if typ in (T_ANY, T_LIST, T_MAP):
                return None
            self.errorf(f"invalid value; expected {TYPE_NAMES[typ]}")
        if typ == T_ANY or typ == T_VALUE:
            return value
        vt = type(value)
        ok = (
            (typ == T_STR and vt is str)
            or (typ == T_INT and vt is int)
            or (typ == T_FLOAT and vt is float)
            or (typ == T_BOOL and vt is bool)
            or (typ == T_LIST and isinstance(value, (list, tuple)))
            or (typ == T_MAP and isinstance(value, dict))
        )
        if ok:
            return value
        if value is None and not iface and typ in (T_LIST, T_MAP):
            return None
        got = "interface {}" if value is None else go_type_name(value)
        self.errorf(f"wrong type for value; expected {TYPE_NAMES[typ]}; got {got}")


def _is_hex_int(s: str) -> bool:
    low = s.lower().lstrip("+-")
    return low.startswith("0x") and "." not in low and "p" not in low


def _q(s: str) -> str:
    from .gofmt import quote
    return quote(s)
