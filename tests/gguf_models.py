"""The tiny GGUF test models (specs) and, next to each, its prompts and exact expected outputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from server.ggufgen import (
    EOS,
    HParams,
    ModelSpec,
    RandomWeights,
    Special,
    TokenRef,
    bpe_vocab,
    scripted_spec,
    spm_vocab,
    utf8_bytes,
    write_gguf,
)
from server.demo import CHATML_TEMPLATE

IM_START = Special("<|im_start|>")
IM_END = Special("<|im_end|>")
TOOL_CALL = Special("<tool_call>")


@dataclass(frozen=True)
class Case:
    """A completion prompt and what greedy decoding (temperature 0) must give.

    `tokens` are the generated tokens in order, including the final EOS/EOG token for
    finish "stop" by end of generation (not for a stop string or "length").
    """

    prompt: str
    text: str
    finish: str
    tokens: tuple[TokenRef, ...]
    max_tokens: int = 32
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatCase:
    """A chat (rendered with the model's own GGUF template) and its exact answer."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    text: str
    finish: str
    tokens: tuple[TokenRef, ...]
    max_tokens: int = 32

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


@dataclass(frozen=True)
class FixtureModel:
    """One test model: its spec, file name, and the scripted behaviour tests may rely on."""

    name: str
    spec: ModelSpec
    cases: Mapping[str, Case] = field(default_factory=dict)
    chat_cases: Mapping[str, ChatCase] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def write(self, folder: Path) -> Path:
        return write_gguf(self.spec, Path(folder) / self.filename)


# --------------------------------------------------------------------------- the script
# Only the last token counts: each chain is [prompt words..., then the generated tokens].
# Both "one" and " one" start a chain so the same prompt text works for SPM (which adds
# the '▁' prefix itself) and BPE (which does not).

EOS_CHAIN = (" two", " three", " four", " five", EOS)
EOG_CHAIN = (" world", "!", IM_END)
HIDDEN_CONTROL_CHAIN = (IM_START, " after", EOS)
# " dog." goes back to " The": a cycle that only max_tokens ends.
LOOP_CHAIN = (" quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog.", " The")
# One byte per step; every byte is distinct because each token has a single successor.
UTF8_CHAIN = (" caf", *utf8_bytes("é"), " ", *utf8_bytes("中文🦙"), EOS)
USER_DEFINED_CHAIN = (TOOL_CALL, " no", EOS)
# "### Human:" spread over three tokens, for stop strings that span tokens.
SPLIT_STOP_CHAIN = (" Sure", " thing", "###", " Hu", "man:", " next", EOS)

_STARTS: tuple[tuple[str, tuple[TokenRef, ...]], ...] = (
    ("one", EOS_CHAIN),
    ("Hello", EOG_CHAIN),
    ("special", HIDDEN_CONTROL_CHAIN),
    ("The", LOOP_CHAIN),
    ("unicode", UTF8_CHAIN),
    ("yes", USER_DEFINED_CHAIN),
    ("ask", SPLIT_STOP_CHAIN),
)


def _chains() -> list[list[TokenRef]]:
    chains: list[list[TokenRef]] = []
    for word, rest in _STARTS:
        chains.append([word, *rest])
        chains.append([" " + word, *rest])
    # Chat templates end their generation prompt with '\n' (ChatML: '<|im_start|>assistant\n').
    chains.append(["\n", "Hello", *EOG_CHAIN])
    return chains


SCRIPTED_CASES: dict[str, Case] = {
    "eos_chain": Case("one", " two three four five", "stop", EOS_CHAIN),
    "eos_chain_stop_string": Case("one", " two three ", "stop", (" two", " three", " four"), stop=("four",)),
    "eog_control": Case("Hello", " world!", "stop", EOG_CHAIN),
    "hidden_control": Case("special", " after", "stop", HIDDEN_CONTROL_CHAIN),
    "loop_length": Case(
        "The",
        " quick brown fox jumps over the lazy dog. The quick brown fox",
        "length",
        LOOP_CHAIN + LOOP_CHAIN[:3],
        max_tokens=12,
    ),
    "utf8_bytes": Case("unicode", " café 中文🦙", "stop", UTF8_CHAIN),
    "user_defined": Case("yes", "<tool_call> no", "stop", USER_DEFINED_CHAIN),
    "split_stop_plain": Case("ask", " Sure thing### Human: next", "stop", SPLIT_STOP_CHAIN),
    "split_stop_string": Case(
        "ask", " Sure thing", "stop", (" Sure", " thing", "###", " Hu", "man:"), stop=("### Human:",)
    ),
    "unscripted": Case("xyz", "", "stop", (EOS,)),
}

CHAT_CASES: dict[str, ChatCase] = {
    "hi": ChatCase((("user", "hi"),), "Hello world!", "stop", ("Hello", *EOG_CHAIN)),
    "with_system": ChatCase(
        (("system", "You are terse."), ("user", "Say something.")), "Hello world!", "stop", ("Hello", *EOG_CHAIN)
    ),
}


def _scripted(name: str, tokenizer: str, dtype: str, chat_template: str | None = None) -> FixtureModel:
    spec = scripted_spec(
        tokenizer,  # type: ignore[arg-type]
        _chains(),
        user_defined=("<tool_call>",),
        chat_template=chat_template,
        dtype=dtype,  # type: ignore[arg-type]
        name=name,
    )
    return FixtureModel(name, spec, SCRIPTED_CASES, CHAT_CASES if chat_template else {})


# --------------------------------------------------------------------------- the agent model
# A chat model with a Hermes/Qwen-style template (tools in the system turn, calls as
# <tool_call>{...}</tool_call>, results as <tool_response>): its generation prompt ends in
# "\n" when tools are offered (the reply is a call), in "So" after a tool result (a text
# answer), and in an open <think> without tools (reasoning, then an answer). Go-template
# configs on the same file reach the LocalAI-style JSON chains with "CALL:" and "REPLY:".

THINK, THINK_END, TOOL_CALL_END = Special("<think>"), Special("</think>"), Special("</tool_call>")
AGENT_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nTools: {{ tools | tojson }}\n"
    "Call one as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'tool' %}<|im_start|>user\n<tool_response>{{ m.content }}</tool_response><|im_end|>\n"
    "{%- elif m.tool_calls %}<|im_start|>assistant\n{% for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}"
    "</tool_call>{% endfor %}<|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if messages[-1].role == 'tool' %}So{% elif not tools %}<think>{% endif %}{% endif %}"
)
HERMES_CALL = (TOOL_CALL, '{"name":', ' "get_weather",', ' "arguments":', ' {"city":', ' "Paris"}}', TOOL_CALL_END, IM_END)
TOOL_ANSWER = (" it", " is", " sunny.", IM_END)
THINKING = (" Let", " me", " think.", THINK_END, " Four.", IM_END)
JSON_CALL = ('{"name": ', '"get_weather", ', '"arguments": ', '{"city": ', '"Rome"}}', EOS)
JSON_ANSWER = ('{ "name": ', '"answer", ', '"arguments":', ' {"message": ', '"Hi there!"}}', EOS)
AGENT_CHAINS = [
    ["\n", *HERMES_CALL], ["So", *TOOL_ANSWER], [" So", *TOOL_ANSWER], [THINK, *THINKING],
    ["CALL:", *JSON_CALL], [" CALL:", *JSON_CALL], ["REPLY:", *JSON_ANSWER], [" REPLY:", *JSON_ANSWER],
]


def _agent(name: str) -> FixtureModel:
    spec = scripted_spec("llama", AGENT_CHAINS, user_defined=("<tool_call>", "</tool_call>", "<think>", "</think>"),
                         chat_template=AGENT_TEMPLATE, dtype="F16", name=name)
    return FixtureModel(name, spec)


# --------------------------------------------------------------------------- random models

RANDOM_WORDS = (
    " the", " quick", " brown", " fox", " jumps", " over", " lazy", " dog", " Hello", " world",
    "Hello", " hello", " a", " an", " is", " of", " to", " and", " in", " on", "The", " The", ".", ",",
)


def _random(name: str, tokenizer: str, dtype: str, std: float = 0.02, hparams: HParams | None = None) -> FixtureModel:
    if tokenizer == "llama":
        vocab = spm_vocab(RANDOM_WORDS, user_defined=("<tool_call>",), size=512)
    else:
        vocab = bpe_vocab(RANDOM_WORDS, user_defined=("<tool_call>",), size=512)
    spec = ModelSpec(vocab=vocab, hparams=hparams or HParams(), weights=RandomWeights(seed=1234, std=std),
                     dtype=dtype, name=name)  # type: ignore[arg-type]
    return FixtureModel(name, spec)


# --------------------------------------------------------------------------- the catalogue
# Each dtype is covered by at least one random and one scripted model.

SPM_RANDOM = _random("spm-random", "llama", "F16")
BPE_RANDOM = _random("bpe-random", "gpt2", "Q8_0")
# Weights with a wider spread give well-separated logits: the default's nearly uniform logits
# have top-2 gaps of 1e-5, where greedy decoding flips on any change in summation order.
SPM_RANDOM_SHARP = _random("spm-random-sharp", "llama", "F32", std=0.5)
# Sliding-window attention (gemma3): layer 0 sees the last 16 positions, layer 1 all of them.
SWA_RANDOM_SHARP = _random("swa-random-sharp", "llama", "F32", std=0.5,
                           hparams=HParams(arch="gemma3", n_head=2, n_head_kv=1, sliding_window=16, swa_pattern=2))
SPM_SCRIPTED = _scripted("spm-scripted", "llama", "F16")
BPE_SCRIPTED = _scripted("bpe-scripted", "gpt2", "F32")
SPM_CHATML = _scripted("spm-chatml", "llama", "Q8_0", chat_template=CHATML_TEMPLATE)
AGENT = _agent("spm-agent")
BPE_CHATML = _scripted("bpe-chatml", "gpt2", "F16", chat_template=CHATML_TEMPLATE)

MODELS: dict[str, FixtureModel] = {
    m.name: m for m in (SPM_RANDOM, BPE_RANDOM, SPM_RANDOM_SHARP, SWA_RANDOM_SHARP, SPM_SCRIPTED, BPE_SCRIPTED,
                        SPM_CHATML, BPE_CHATML, AGENT)
}
SCRIPTED_MODELS = tuple(m for m in MODELS.values() if m.cases)
CHAT_MODELS = tuple(m for m in MODELS.values() if m.chat_cases)
