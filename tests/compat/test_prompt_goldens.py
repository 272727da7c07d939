"""Every golden in prompt_goldens/ through `llamaslots prompt` (compat.prompt_cmd.main), byte for byte.

The expected prompts were rendered by real Go text/template + sprig (tools/gen_prompt_goldens.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compat import prompt_cmd
from compat.config import ModelConfig, PredictionOptions, TemplateConfig
from compat.prompt import build_chat_prompt

GOLDENS = Path(__file__).parent / "prompt_goldens"
CASES = sorted(p.name for p in GOLDENS.iterdir() if p.is_dir())


def test_there_are_enough_goldens():
    assert len(CASES) >= 40


def _run(d: Path, model: str, capfdbinary) -> tuple[int, bytes, bytes]:
    rc = prompt_cmd.main(["--config-file", str(d / "config.yaml"), "--models-path", str(d / "models"),
                          "--model", model, "--request", str(d / "request.json")])
    out, err = capfdbinary.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name", CASES)
def test_golden(name, capfdbinary):
    d = GOLDENS / name
    meta = json.loads((d / "case.json").read_text(encoding="utf-8"))
    expected = (d / "expected.txt").read_bytes()
    rc, out, err = _run(d, meta["model"], capfdbinary)
    if meta.get("config_check_rejects"):
        # Our loader refuses the config up front; the pipeline itself must still do what LocalAI does.
        assert rc == 1 and b"outside the models path" in err, err.decode()
        raw = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))[0]
        cfg = ModelConfig(name=raw["name"], parameters=PredictionOptions(model=raw["parameters"]["model"]),
                          template=TemplateConfig(**raw["template"]))
        request = json.loads((d / "request.json").read_text(encoding="utf-8"))
        result = build_chat_prompt(cfg, d / "models", request)
        assert result.text.encode() == expected
        assert any("outside path" in w for w in result.warnings), result.warnings
        return
    assert rc == 0, err.decode()
    assert out == expected, f"{name}: {meta['note']}\nstderr:\n{err.decode()}"
    if meta["expect_warning"]:
        assert b"warning:" in err, f"{name}: LocalAI fell back here, so a warning is due"
