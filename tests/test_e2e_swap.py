"""The field note's third failure: simultaneous requests to different models with
LOCALAI_SINGLE_ACTIVE_BACKEND=true. LocalAI answered one of them with
`500 could not load model: rpc error: code = Canceled`; here every request is answered."""
from __future__ import annotations

import concurrent.futures
import shutil

import openai

from tests.serving import running_server

CONFIG = """
- name: first
  context_size: 512
  threads: 2
  parameters: {model: spm-scripted.gguf, temperature: 0}
- name: second
  context_size: 512
  threads: 2
  parameters: {model: bpe-scripted.gguf, temperature: 0}
"""


def test_concurrent_requests_to_two_models_with_single_active_backend(tmp_path, gguf_path):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("spm-scripted", "bpe-scripted"):
        shutil.copy(gguf_path(name), models / f"{name}.gguf")
    (models / "config.yaml").write_text(CONFIG)
    env = {"LOCALAI_SINGLE_ACTIVE_BACKEND": "true", "LOCALAI_PARALLEL_REQUESTS": "true", "LLAMACPP_PARALLEL": "8"}
    with running_server(models / "config.yaml", models, tmp_path / "server.log", env) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="None", max_retries=0, timeout=120)

        def ask(model: str) -> tuple[str, str | None]:
            r = client.completions.create(model=model, prompt="one")
            return r.choices[0].text, r.choices[0].finish_reason

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(ask, ["first", "second"] * 6))
    assert answers == [(" two three four five", "stop")] * 12
    log = (tmp_path / "server.log").read_text()
    loads = log.count("manager: loading model")
    # One model resident at a time, so at least one swap; requests are served in groups
    # per model rather than swapping back and forth per request (12 requests, not 12 loads).
    assert 2 <= loads <= 3, log
