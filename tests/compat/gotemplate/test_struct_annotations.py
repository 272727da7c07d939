"""Struct field kinds are read from evaluated (non-postponed) annotations too."""

import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from compat.gotemplate import ExecError, go_field, parse


@dataclass
class Item:
    __go_type__ = "pkg.Item"
    Name: str = field(default="", metadata=go_field(json="name"))


@dataclass
class Holder:
    __go_type__ = "pkg.Holder"
    Items: Optional[typing.List[Item]] = None
    Tags: "list[str] | None" = None
    Meta: Optional[dict] = None
    Extra: Optional[Any] = None
    Value: Any = None


def test_typed_nil_from_evaluated_annotations():
    out = parse("{{.Items}}|{{len .Tags}}|{{.Meta}}|{{.Extra}}|{{toJson .}}").execute(Holder())
    assert out == '[]|0|map[]|<no value>|{"Items":null,"Tags":null,"Meta":null,"Extra":null,"Value":null}'


def test_interface_field_errors_name_interface_type():
    for text in ("{{.Extra.X}}", "{{.Value.X}}"):
        try:
            parse(text).execute(Holder(Extra="s", Value="s"))
        except ExecError as e:
            assert str(e).endswith("can't evaluate field X in type interface {}")
        else:
            raise AssertionError("expected an error")
    assert parse("{{range .Items}}{{.Name}}{{end}}").execute(Holder(Items=[Item("a"), Item("b")])) == "ab"
