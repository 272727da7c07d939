"""The generated GGUF fixtures load in llama-cpp-python and decode exactly as scripted."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import llama_cpp
import pytest

from server.demo import DEMO_SENTENCE, ensure_demo_model
from server.ggufgen import EOS, Special, Vocab
from tests.gguf_models import CHAT_MODELS, MODELS, SCRIPTED_MODELS, FixtureModel

_LOADED: dict[Path, llama_cpp.Llama] = {}


def _llama(path: Path) -> llama_cpp.Llama:
    # Loading takes ~20 ms, but dozens of parametrized cases add up; Llama is reused
    # (create_completion restarts from the prompt each time).
    if path not in _LOADED:
        _LOADED[path] = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
    return _LOADED[path]


@pytest.fixture(scope="module", autouse=True)
def _free_models():
    yield
    for llm in _LOADED.values():
        llm.close()
    _LOADED.clear()


def _ids(vocab: Vocab, refs) -> list[int]:
    return [vocab.id_of(r) for r in refs]


def _greedy_tokens(llm: llama_cpp.Llama, prompt: str, n: int) -> list[int]:
    """The first n tokens greedy decoding samples after `prompt` (EOG included)."""
    out: list[int] = []
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    for tok in llm.generate(tokens, temp=0.0, reset=True):
        out.append(tok)
        if len(out) == n or llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
            break
    return out


SCRIPTED_PARAMS = [
    pytest.param(m, case_name, id=f"{m.name}:{case_name}") for m in SCRIPTED_MODELS for case_name in m.cases
]


@pytest.mark.parametrize(("model", "case_name"), SCRIPTED_PARAMS)
def test_scripted_completion_text_and_finish(gguf_path: Callable[[str], Path], model: FixtureModel, case_name: str):
    case = model.cases[case_name]
    llm = _llama(gguf_path(model.name))
    result = llm.create_completion(
        case.prompt, max_tokens=case.max_tokens, temperature=0, stop=list(case.stop) or None
    )
    choice = result["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == (case.text, case.finish)
    if not case.stop:
        eog_last = case.finish == "stop"
        assert result["usage"]["completion_tokens"] == len(case.tokens) - (1 if eog_last else 0)


@pytest.mark.parametrize(("model", "case_name"), SCRIPTED_PARAMS)
def test_scripted_completion_token_for_token(gguf_path: Callable[[str], Path], model: FixtureModel, case_name: str):
    case = model.cases[case_name]
    llm = _llama(gguf_path(model.name))
    want = _ids(model.spec.vocab, case.tokens)
    assert _greedy_tokens(llm, case.prompt, len(want)) == want


@pytest.mark.parametrize("model", SCRIPTED_MODELS, ids=lambda m: m.name)
def test_scripted_model_survives_hot_sampling(gguf_path: Callable[[str], Path], model: FixtureModel):
    # The scripted successor wins by a logit margin of ~128, so even hot sampling with a
    # repeat penalty follows the script: servers can test sampling paths with these models.
    llm = _llama(gguf_path(model.name))
    result = llm.create_completion("one", max_tokens=16, temperature=1.5, repeat_penalty=1.3, seed=7)
    assert result["choices"][0]["text"] == " two three four five"


@pytest.mark.parametrize("model", SCRIPTED_MODELS, ids=lambda m: m.name)
def test_tokenizer_round_trip_and_special_tokens(gguf_path: Callable[[str], Path], model: FixtureModel):
    llm = _llama(gguf_path(model.name))
    v = model.spec.vocab
    one = llm.tokenize(b"one", add_bos=False, special=False)
    # SPM puts '▁' in front itself; BPE has a plain "one" token for the same prompt text.
    assert one == [v.id_of(" one" if v.model == "llama" else "one")]
    assert llm.tokenize(b"<|im_end|>", add_bos=False, special=True) == [v.id_of(Special("<|im_end|>"))]
    assert llm.token_eos() == v.id_of(EOS)
    assert llm.n_vocab() == v.n_vocab
    im_start = v.id_of(Special("<|im_start|>"))
    assert llm.detokenize([im_start]) == b""
    assert llm.detokenize([im_start], special=True) == b"<|im_start|>"
    assert llm.detokenize([v.id_of(Special("<tool_call>"))]) == b"<tool_call>"
    # SPM's own '▁' prefix is dropped again right after BOS (BPE adds neither).
    text = "café 中文🦙 ### Human: hi"
    assert llm.detokenize(llm.tokenize(text.encode(), add_bos=True)) == text.encode()


@pytest.mark.parametrize(("model", "chat_name"), [(m, c) for m in CHAT_MODELS for c in m.chat_cases])
def test_chat_template_answer_is_scripted(gguf_path: Callable[[str], Path], model: FixtureModel, chat_name: str):
    case = model.chat_cases[chat_name]
    llm = _llama(gguf_path(model.name))
    result = llm.create_chat_completion(case.as_dicts(), temperature=0, max_tokens=case.max_tokens)
    choice = result["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (case.text, case.finish)
    assert result["usage"]["completion_tokens"] == len(case.tokens) - 1


@pytest.mark.parametrize("name", ["spm-random", "bpe-random"])
def test_random_models_load_and_decode_deterministically(gguf_path: Callable[[str], Path], name: str):
    llm = _llama(gguf_path(name))
    assert llm.n_vocab() == MODELS[name].spec.vocab.n_vocab
    first = llm.create_completion("The quick brown fox", max_tokens=8, temperature=0)
    second = llm.create_completion("The quick brown fox", max_tokens=8, temperature=0)
    assert first["choices"][0]["text"] == second["choices"][0]["text"]
    assert first["usage"]["completion_tokens"] >= 1
    words = llm.tokenize(b"The quick brown fox", add_bos=False)
    assert len(words) == 4  # whole-word tokens exist and are reached by the tokenizer


def test_realistic_q8_0_model_generates(realistic_gguf: Path):
    llm = _llama(realistic_gguf)
    assert llm.n_vocab() == 8192 and llm.n_embd() == 512
    result = llm.create_completion("The quick brown fox", max_tokens=16, temperature=0)
    assert result["usage"]["completion_tokens"] >= 1
    again = llm.create_completion("The quick brown fox", max_tokens=16, temperature=0)
    assert again["choices"][0]["text"] == result["choices"][0]["text"]


def test_demo_model_answers_any_chat_with_its_sentence(demo_gguf: Path):
    llm = _llama(demo_gguf)
    for messages in (
        [{"role": "user", "content": "hi"}],
        [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "What is 2+2? Answer with one word."},
            {"role": "assistant", "content": "Four."},
            {"role": "user", "content": "Thanks! One more: what is the capital of France?"},
        ],
    ):
        result = llm.create_chat_completion(messages, temperature=0, max_tokens=100)
        choice = result["choices"][0]
        assert (choice["message"]["content"], choice["finish_reason"]) == (DEMO_SENTENCE, "stop")


def test_demo_model_answers_plain_completions_too(demo_gguf: Path):
    llm = _llama(demo_gguf)
    for prompt in ("Tell me about Rome", "the", "Hello! I am the"):
        result = llm.create_completion(prompt, temperature=0, max_tokens=100)
        assert (result["choices"][0]["text"], result["choices"][0]["finish_reason"]) == (DEMO_SENTENCE, "stop")


def test_demo_model_is_well_under_5_mb(tmp_path: Path):
    assert ensure_demo_model(tmp_path).stat().st_size < 5_000_000
