"""Shared pytest fixtures: the tiny GGUF models of tests/gguf_models.py, written once per session."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from server.demo import ensure_demo_model
from server.ggufgen import realistic_random_spec, write_gguf
from tests.gguf_models import MODELS


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding the session's generated GGUF files (usable as a models path)."""
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def gguf_path(gguf_dir: Path) -> Callable[[str], Path]:
    """gguf_path(name) -> path of MODELS[name], written on first use."""
    written: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in written:
            written[name] = MODELS[name].write(gguf_dir)
        return written[name]

    return get


@pytest.fixture(scope="session")
def spm_random_gguf(gguf_path: Callable[[str], Path]) -> Path:
    return gguf_path("spm-random")


@pytest.fixture(scope="session")
def bpe_random_gguf(gguf_path: Callable[[str], Path]) -> Path:
    return gguf_path("bpe-random")


@pytest.fixture(scope="session")
def spm_scripted_gguf(gguf_path: Callable[[str], Path]) -> Path:
    return gguf_path("spm-scripted")


@pytest.fixture(scope="session")
def bpe_scripted_gguf(gguf_path: Callable[[str], Path]) -> Path:
    return gguf_path("bpe-scripted")


@pytest.fixture(scope="session")
def spm_chatml_gguf(gguf_path: Callable[[str], Path]) -> Path:
    return gguf_path("spm-chatml")


@pytest.fixture(scope="session")
def bpe_chatml_gguf(gguf_path: Callable[[str], Path]) -> Path:
    return gguf_path("bpe-chatml")


@pytest.fixture(scope="session")
def demo_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, written into a session cache folder (never the user's real cache)."""
    return ensure_demo_model(tmp_path_factory.mktemp("demo-cache"))


@pytest.fixture(scope="session")
def realistic_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark-sized random model (Q8_0, ~38 MB; about 2 s to write)."""
    return write_gguf(realistic_random_spec(), tmp_path_factory.mktemp("realistic") / "realistic-q8_0.gguf")
