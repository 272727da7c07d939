"""`llamaslots` as a user runs it: refusals with reasons, and the subcommands' wiring."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# A byte-for-byte copy of ../shared/seed/config.yaml (the field note's config).
SEED = ROOT / "tests" / "compat" / "data" / "seed-config.yaml"


def llamaslots(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "server.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_run_refuses_the_field_notes_broken_config_naming_line_38(tmp_path):
    seed = tmp_path / "config.yaml"
    shutil.copy(SEED, seed)
    models = tmp_path / "models"
    models.mkdir()
    r = llamaslots("run", "--config-file", seed, "--models-path", models)
    assert r.returncode == 2
    assert "config.yaml:38:11: error" in r.stderr and "chat: |-" in r.stderr


def test_run_refuses_missing_model_files(tmp_path):
    r = llamaslots("run", "--config-file", ROOT / "configs" / "seed-models.yaml", "--models-path", tmp_path)
    assert r.returncode == 2
    assert "vicuna-13b-v1.5.Q8_0.gguf is not in the models path" in r.stderr


def test_bad_environment_value_is_named(tmp_path):
    import os

    r = llamaslots("run", "--models-path", tmp_path, env={**os.environ, "LOCALAI_THREADS": "many"})
    assert r.returncode == 2 and "LOCALAI_THREADS" in r.stderr


def test_subcommands_are_wired():
    assert llamaslots("check-config", ROOT / "configs" / "seed-models.yaml").returncode in (0, 1)
    r = llamaslots("prompt", "--config-file", ROOT / "configs" / "seed-models.yaml", "--model", "vicuna-13b",
                   "--prompt", "hi")
    assert r.returncode == 0, r.stderr
    assert "hi" in r.stdout
    assert llamaslots("frobnicate").returncode == 2


def test_every_example_config_checks_clean(tmp_path):
    """configs/ are what users copy: no errors, and no warnings but the model files' absence."""
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        r = llamaslots("check-config", config, "--models-path", tmp_path)
        assert r.returncode in (0, 1), (config, r.stdout, r.stderr)
        problems = [line for line in (r.stdout + r.stderr).splitlines() if ": warning:" in line or ": error:" in line]
        assert all("is not in the models path" in p for p in problems), (config, problems)


@pytest.mark.parametrize("how", [("--debug",), ("--log-level", "debug"), "LOCALAI_LOG_LEVEL", "DEBUG"])
def test_debug_logging_shows_the_prompt(tmp_path, demo_gguf, how):
    import httpx

    from tests.serving import running_server

    config = tmp_path / "c.yaml"
    config.write_text(f"- name: demo\n  context_size: 256\n  threads: 1\n  parameters:\n    model: {demo_gguf.name}\n")
    args, env = (how, {}) if isinstance(how, tuple) else ((), {how: "debug" if how != "DEBUG" else "true"})
    log = tmp_path / "server.log"
    with running_server(config, demo_gguf.parent, log, env=env, args=args) as base:
        r = httpx.post(base + "/v1/chat/completions", timeout=60,
                       json={"model": "demo", "messages": [{"role": "user", "content": "marker-5b1f"}]})
        assert r.status_code == 200, r.text
    text = log.read_text()
    assert "DEBUG" in text and "prompt for model demo" in text and "marker-5b1f" in text, text[-2000:]


def test_info_logging_hides_debug_lines(tmp_path, demo_gguf):
    import httpx

    from tests.serving import running_server

    config = tmp_path / "c.yaml"
    config.write_text(f"- name: demo\n  context_size: 256\n  threads: 1\n  parameters:\n    model: {demo_gguf.name}\n")
    log = tmp_path / "server.log"
    with running_server(config, demo_gguf.parent, log, args=("--debug", "--log-level", "info")) as base:
        httpx.post(base + "/v1/chat/completions", timeout=60,
                   json={"model": "demo", "messages": [{"role": "user", "content": "marker-5b1f"}]})
    assert "DEBUG" not in log.read_text()
