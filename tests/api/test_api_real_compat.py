"""The app wired to the real compat functions (create_app's default): Go templates, GGUF Jinja."""
from __future__ import annotations

import dataclasses

import httpx
import pytest

from compat.config_schema import TemplateConfig
from server.app import create_app
from tests.api.conftest import sse_events
from tests.api.fakes import FakeHandle, FakeManager, model_config, script_text

pytestmark = pytest.mark.anyio

CHATML = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

MESSAGES = [
    {"role": "system", "content": "あなたは優秀な観光ガイドです。"},
    {"role": "user", "content": "都道府県名を1つ"},
]


@pytest.fixture
def vicuna() -> FakeHandle:
    config = model_config(
        "vicuna-13b",
        roles={"system": "", "user": "USER: ", "assistant": "ASSISTANT: "},
        template=TemplateConfig(chat="{{.Input}}\nASSISTANT:"),
        stopwords=["USER:"],
        trimsuffix=["</s>"],
    )
    return FakeHandle(config, script_text(" 京都府", "です。", "</s>"))


@pytest.fixture
def gguf() -> FakeHandle:
    config = model_config("qwen", template=TemplateConfig(use_tokenizer_template=True))
    return FakeHandle(config, script_text("Hi"), chat_template=CHATML)


@pytest.fixture
async def real_client(vicuna, gguf):
    app = create_app(FakeManager([vicuna, gguf]), None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_go_template_prompt_and_postprocessing(real_client, vicuna):
    body = {"model": "vicuna-13b", "messages": MESSAGES, "temperature": 0.1}
    r = await real_client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "京都府です。"
    req = vicuna.requests[0]
    assert req.prompt == "あなたは優秀な観光ガイドです。\nUSER: 都道府県名を1つ\nASSISTANT:"
    assert req.add_special is True
    assert req.params.stop == ("USER:",)
    assert req.params.sampling.temperature == 0.1

    r = await real_client.post("/v1/chat/completions", json={**body, "stream": True})
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in sse_events(r.text)[:-1])
    assert text == "京都府です。"


async def test_gguf_template_prompt(real_client, gguf):
    r = await real_client.post("/v1/chat/completions", json={"model": "qwen", "messages": MESSAGES})
    assert r.status_code == 200, r.text
    req = gguf.requests[0]
    # The template's own "<s>" is stripped; tokenizing with add_special puts one BOS back.
    assert req.prompt.startswith("<|im_start|>system\nあなたは")
    assert req.prompt.endswith("<|im_start|>assistant\n")
    assert req.add_special is True


async def test_gguf_template_raise_exception_is_400(real_client, gguf):
    gguf.info = dataclasses.replace(gguf.info, chat_template="{{ raise_exception('roles must alternate') }}")
    r = await real_client.post("/v1/chat/completions", json={"model": "qwen", "messages": MESSAGES})
    assert r.status_code == 400
    assert "roles must alternate" in r.json()["error"]["message"]


async def test_completion_template(real_client, vicuna):
    vicuna.config.template.completion = "Q: {{.Input}}\nA:"
    r = await real_client.post("/v1/completions", json={"model": "vicuna-13b", "prompt": "capital?"})
    assert r.status_code == 200, r.text
    assert vicuna.requests[0].prompt == "Q: capital?\nA:"
