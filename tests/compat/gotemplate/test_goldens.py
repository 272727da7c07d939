"""compat.gotemplate against outputs and error messages recorded from real Go (tools/gen_gotemplate_goldens.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from compat.gotemplate import ExecError, ParseError, TemplateError, parse

GOLDENS = json.loads((Path(__file__).parent / "goldens.json").read_text(encoding="utf-8"))


def _go_data(data):
    # The oracle decodes its data with encoding/json, so every number is a float64.
    return json.loads(json.dumps(data), parse_int=float)


def _render(case):
    return parse(case["template"], "prompt").execute(_go_data(case["data"]))


def test_enough_goldens():
    assert len(GOLDENS) >= 150
    assert sum("error" in c for c in GOLDENS) >= 40


@pytest.mark.parametrize("case", GOLDENS, ids=[c["name"] for c in GOLDENS])
def test_golden(case):
    if "error" in case:
        with pytest.raises(TemplateError) as ei:
            _render(case)
        is_parse = ":" not in case["error"].split(": ", 2)[1].removeprefix("prompt:")
        assert isinstance(ei.value, ParseError if is_parse else ExecError), str(ei.value)
        assert str(ei.value) == case["error"]
        return
    out = _render(case)
    if "expected_bytes_b64" in case:
        assert out.encode("utf-8", "surrogateescape") == base64.b64decode(case["expected_bytes_b64"])
    else:
        assert out == case["expected"]
