"""LocalAI's model config schema as typed dataclasses: YAML key names, Go pointer semantics, defaults."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Fields typed `X | None` mirror Go pointers: None means "absent from the YAML", which LocalAI
# treats differently from an explicit zero (temperature: 0 is greedy; absent is 0.9).

BACKEND_NAME = re.compile(r"^[a-zA-Z0-9-_]+$")
LLAMA_BACKENDS = ("", "llama-cpp", "llama")

FLASH_ATTENTION_VALUES = {
    "auto": "auto", "on": "on", "off": "off", "enabled": "on", "disabled": "off",
    "true": "on", "false": "off",
}
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
ROPE_SCALING = ("", "none", "linear", "yarn")
KNOWN_USECASES = (
    "chat", "completion", "edit", "embeddings", "rerank", "tokenize", "image", "video", "tts",
    "transcript", "sound_generation", "vad", "detection", "score", "token_classify",
    "realtime_audio", "any",
)

DEFAULT_JOIN = "\n"


def _no_effect(reason: str) -> dict:
    return {"no_effect": reason}


_LLAMACPP_IGNORES = _no_effect("LocalAI's llama-cpp backend ignores it too")
_OTHER_BACKEND = _no_effect("only used by other LocalAI backends; this server runs GGUF via llama.cpp")
_METADATA = _no_effect("descriptive only")
_V4_FEATURE = _no_effect("a LocalAI v4 feature this server does not implement")
_NO_XML_CALLS = _no_effect("XML tool-call formats are not implemented here; JSON, hermes, mistral and llama3 calls are")
_NO_PEG = _no_effect("there is no PEG parser here to turn off: calls are parsed by compat/tool_calls.py")
_NO_TRIGGERS = _no_effect("lazy grammars are not implemented here: a tool grammar applies from the first token")


@dataclass
class PredictionOptions:
    """The `parameters:` block (also the JSON names a request may override)."""

    model: str = ""
    language: str = field(default="", metadata=_OTHER_BACKEND)
    translate: bool = field(default=False, metadata=_OTHER_BACKEND)
    n: int = 0
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    echo: bool = False
    batch: int = 0
    ignore_eos: bool = False
    repeat_penalty: float = 0.0
    repeat_last_n: int = 0
    n_keep: int = 0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    tfz: float | None = field(default=None, metadata=_no_effect(
        "tail-free sampling was removed from llama.cpp"))
    typical_p: float | None = None
    seed: int | None = None
    logprobs: bool = field(default=False, metadata={"decode": "logprobs"})
    top_logprobs: int | None = None
    logit_bias: dict[str, float] = field(default_factory=dict)
    negative_prompt: str = field(default="", metadata=_OTHER_BACKEND)
    rope_freq_base: float = 0.0
    rope_freq_scale: float = 0.0
    negative_prompt_scale: float = field(default=0.0, metadata=_OTHER_BACKEND)
    clip_skip: int = field(default=0, metadata=_OTHER_BACKEND)
    tokenizer: str = field(default="", metadata=_OTHER_BACKEND)
    encoding_format: str = ""
    pooling: str = field(default="", metadata=_V4_FEATURE)
    pooling_half_life_tokens: Any = field(default=None, metadata=_V4_FEATURE)


@dataclass
class TemplateConfig:
    """The `template:` block. Each template string is a `<models>/<name>.tmpl` name or the text itself."""

    chat: str = ""
    chat_message: str = ""
    completion: str = ""
    edit: str = ""
    function: str = ""
    use_tokenizer_template: bool = False
    # None = absent = "\n"; an explicit "" joins messages with nothing.
    join_chat_messages_by_character: str | None = None
    multimodal: str = ""
    reply_prefix: str = ""
    system_messages_after_first: str = field(default="", metadata=_V4_FEATURE)
    jinja_template: bool = field(default=False, metadata=_no_effect(
        "removed in LocalAI v3.8; use use_tokenizer_template: true for the GGUF's own template"))

    @property
    def join_character(self) -> str:
        j = self.join_chat_messages_by_character
        return DEFAULT_JOIN if j is None else j

    def has_template(self) -> bool:
        """LocalAI's HasTemplate: any of chat/chat_message/completion/edit is configured."""
        return bool(self.chat or self.chat_message or self.completion or self.edit)


@dataclass
class GrammarConfig:
    """`function.grammar`: how LocalAI builds a GBNF grammar for tool calls."""

    disable: bool = False
    parallel_calls: bool = False
    mixed_mode: bool = False
    no_mixed_free_string: bool = False
    disable_parallel_new_lines: bool = False
    prefix: str = ""
    expect_strings_after_json: bool = False
    properties_order: str = ""
    schema_type: str = ""
    triggers: Any = field(default=None, metadata=_NO_TRIGGERS)


@dataclass
class FunctionsConfig:
    """The `function:` block (tool calling), applied by compat/tool_calls.py: the grammar a
    call is held to, the no-action `answer` function, and how a reply is parsed into calls."""

    disable_no_action: bool = False
    no_action_function_name: str = ""
    no_action_description_name: str = ""
    grammar: GrammarConfig = field(default_factory=GrammarConfig)
    response_regex: Any = None
    json_regex_match: Any = None
    argument_regex: Any = None
    argument_regex_key_name: str = ""
    argument_regex_value_name: str = ""
    replace_function_results: Any = None
    replace_llm_results: Any = None
    capture_llm_results: Any = None
    function_name_key: str = ""
    function_arguments_key: str = ""
    xml_format_preset: str = field(default="", metadata=_NO_XML_CALLS)
    xml_format: Any = field(default=None, metadata=_NO_XML_CALLS)
    automatic_tool_parsing_fallback: bool = False
    disable_peg_parser: bool = field(default=False, metadata=_NO_PEG)


@dataclass(frozen=True)
class TextSpan:
    """Where a string value sits in its YAML file, to turn a line:col inside the value into one
    in the file. Exact for block scalars (`|`, `|-`), whose lines are the file's lines; for a
    quoted or plain scalar only its first line is mapped exactly."""

    line: int  # 1-based line of the value's first character (block scalar: its first text line)
    col: int  # 1-based column of that character
    block: bool

    def locate(self, line: int, col: int) -> tuple[int, int]:
        """(file line, file col) of 1-based (line, col) inside the value; col 0 = unknown."""
        if self.block:
            return self.line + line - 1, (self.col + col - 1) if col else 0
        if line <= 1:
            return self.line, (self.col + col - 1) if col else 0
        return self.line + line - 1, 0


@dataclass(frozen=True)
class Source:
    """Where a model entry was defined (1-based line of the entry's first key)."""

    file: Path | None
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.file else f"<built-in>:{self.line}"


# Aliases of llama-cpp `options:` names (backend/cpp/llama-cpp/grpc-server.cpp): any spelling
# in one group sets the same llama.cpp parameter.
_OPTION_ALIASES = [
    ("use_jinja", "jinja"),
    ("parallel", "n_parallel"),
    ("grpc_servers", "rpc_servers"),
    ("fit_params", "fit"),
    ("fit_params_target", "fit_target"),
    ("fit_params_min_ctx", "fit_ctx"),
    ("n_cache_reuse", "cache_reuse"),
    ("slot_prompt_similarity", "sps"),
    ("device", "devices"),
]
OPTION_SPELLINGS: dict[str, tuple[str, ...]] = {}
for _group in _OPTION_ALIASES:
    for _name in _group:
        OPTION_SPELLINGS[_name] = _group

KNOWN_OPTIONS = {
    "use_jinja", "jinja", "context_shift", "cache_ram", "parallel", "n_parallel", "grpc_servers",
    "rpc_servers", "fit_params", "fit", "fit_params_target", "fit_target", "fit_params_min_ctx",
    "fit_ctx", "n_cache_reuse", "cache_reuse", "slot_prompt_similarity", "sps", "swa_full",
    "cont_batching", "check_tensors", "warmup", "no_op_offload", "kv_unified",
    "n_ctx_checkpoints", "cache_idle_slots", "n_ubatch", "threads_batch", "pooling_type",
    "device", "devices", "split_mode", "checkpoint_min_step", "verbosity", "direct_io",
    "embd_normalize", "reasoning_format", "reasoning_budget", "prefill_assistant",
    "mmproj_offload", "image_min_tokens", "image_max_tokens", "override_tensor", "cpu_moe",
    "n_cpu_moe", "gpu",
}

TRUE_WORDS = ("true", "1", "yes", "on", "enabled")


def split_option(entry: str) -> tuple[str, str]:
    """`key:value` split at the first colon; a bare `key` means "true"."""
    key, sep, value = entry.partition(":")
    return key.strip(), (value.strip() if sep else "true")


@dataclass
class ModelConfig:
    """One model entry: ModelConfig with LLMConfig's keys inlined at the top level."""

    name: str = ""
    backend: str = ""
    parameters: PredictionOptions = field(default_factory=PredictionOptions)
    template: TemplateConfig = field(default_factory=TemplateConfig)
    function: FunctionsConfig = field(default_factory=FunctionsConfig)
    # None = not in the YAML: the CLI --f16 / --threads value applies.
    f16: bool | None = field(default=None, metadata=_LLAMACPP_IGNORES)
    threads: int | None = None
    debug: bool = False
    roles: dict[str, str] = field(default_factory=dict)
    embeddings: bool = False
    known_usecases: list[str] = field(default_factory=list, metadata={"decode": "usecases"})
    known_input_modalities: list[str] = field(default_factory=list, metadata=_V4_FEATURE)
    known_output_modalities: list[str] = field(default_factory=list, metadata=_V4_FEATURE)
    download_files: list[Any] = field(default_factory=list, metadata=_no_effect(
        "nothing is downloaded; put the files in the models path"))
    description: str = field(default="", metadata=_METADATA)
    usage: str = field(default="", metadata=_METADATA)
    options: list[str] = field(default_factory=list, metadata={"decode": "options"})
    overrides: list[str] = field(default_factory=list)
    grpc: Any = field(default=None, metadata=_no_effect("no gRPC backends here"))
    cuda: bool = field(default=False, metadata=_OTHER_BACKEND)
    step: int = field(default=0, metadata=_OTHER_BACKEND)
    diffusers: Any = field(default=None, metadata=_OTHER_BACKEND)
    tts: Any = field(default=None, metadata=_OTHER_BACKEND)
    feature_flags: dict[str, Any] = field(default_factory=dict, metadata=_V4_FEATURE)
    disabled: bool | None = None
    pinned: bool | None = field(default=None, metadata=_V4_FEATURE)
    reasoning: Any = None
    reasoning_effort: str = ""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    # LocalAI v4 keys accepted so that v4 configs load; none is acted on here.
    alias: str = field(default="", metadata=_V4_FEATURE)
    artifacts: Any = field(default=None, metadata=_V4_FEATURE)
    failover: Any = field(default=None, metadata=_V4_FEATURE)
    pipeline: Any = field(default=None, metadata=_V4_FEATURE)
    compression: Any = field(default=None, metadata=_V4_FEATURE)
    concurrency_groups: Any = field(default=None, metadata=_V4_FEATURE)
    mcp: Any = field(default=None, metadata=_V4_FEATURE)
    agent: Any = field(default=None, metadata=_V4_FEATURE)
    pii: Any = field(default=None, metadata=_V4_FEATURE)
    pii_detection: Any = field(default=None, metadata=_V4_FEATURE)
    router: Any = field(default=None, metadata=_V4_FEATURE)
    proxy: Any = field(default=None, metadata=_V4_FEATURE)
    mitm: Any = field(default=None, metadata=_V4_FEATURE)
    limits: Any = field(default=None, metadata=_V4_FEATURE)
    env: Any = field(default=None, metadata=_V4_FEATURE)

    # --- LLMConfig (inline) ---
    system_prompt: str = ""
    tensor_split: str = ""
    main_gpu: str = ""
    rms_norm_eps: float = field(default=0.0, metadata=_LLAMACPP_IGNORES)
    ngqa: int = field(default=0, metadata=_LLAMACPP_IGNORES)
    prompt_cache_path: str = field(default="", metadata=_LLAMACPP_IGNORES)
    prompt_cache_all: bool | None = None
    prompt_cache_ro: bool = field(default=False, metadata=_LLAMACPP_IGNORES)
    mirostat_eta: float | None = None
    mirostat_tau: float | None = None
    mirostat: int | None = None
    gpu_layers: int | None = None
    mmap: bool = True
    mmlock: bool = False
    low_vram: bool = field(default=False, metadata=_LLAMACPP_IGNORES)
    reranking: bool = False
    grammar: str = ""
    stopwords: list[str] = field(default_factory=list)
    cutstrings: list[str] = field(default_factory=list)
    extract_regex: list[str] = field(default_factory=list)
    trimspace: list[str] = field(default_factory=list)
    trimsuffix: list[str] = field(default_factory=list)
    context_size: int | None = None
    numa: bool = field(default=False, metadata=_LLAMACPP_IGNORES)
    lora_adapter: str = ""
    lora_base: str = field(default="", metadata=_LLAMACPP_IGNORES)
    lora_adapters: list[str] = field(default_factory=list)
    lora_scales: list[float] = field(default_factory=list)
    lora_scale: float = 0.0
    no_mulmatq: bool = field(default=False, metadata=_LLAMACPP_IGNORES)
    draft_model: str = field(default="", metadata=_no_effect("speculative decoding is not implemented here"))
    n_draft: int = field(default=0, metadata=_no_effect("speculative decoding is not implemented here"))
    quantization: str = field(default="", metadata=_OTHER_BACKEND)
    load_format: str = field(default="", metadata=_OTHER_BACKEND)
    gpu_memory_utilization: float = field(default=0.0, metadata=_OTHER_BACKEND)
    trust_remote_code: bool = field(default=False, metadata=_OTHER_BACKEND)
    enforce_eager: bool = field(default=False, metadata=_OTHER_BACKEND)
    swap_space: int = field(default=0, metadata=_OTHER_BACKEND)
    max_model_len: int = field(default=0, metadata=_OTHER_BACKEND)
    tensor_parallel_size: int = field(default=0, metadata=_OTHER_BACKEND)
    disable_log_stats: bool = field(default=False, metadata=_OTHER_BACKEND)
    dtype: str = field(default="", metadata=_OTHER_BACKEND)
    limit_mm_per_prompt: Any = field(default=None, metadata=_OTHER_BACKEND)
    engine_args: dict[str, Any] = field(default_factory=dict, metadata=_OTHER_BACKEND)
    mmproj: str = ""
    # Normalized to auto|on|off; LocalAI <= v3.4 took a bool here, v3.5+ a string.
    flash_attention: str = field(default="auto", metadata={"decode": "flash_attention"})
    no_kv_offloading: bool = False
    cache_type_k: str = ""
    cache_type_v: str = ""
    rope_scaling: str = ""
    type: str = ""
    yarn_ext_factor: float = 0.0
    yarn_attn_factor: float = 0.0
    yarn_beta_fast: float = 0.0
    yarn_beta_slow: float = 0.0
    cfg_scale: float = field(default=0.0, metadata=_OTHER_BACKEND)

    # --- not YAML: where the entry came from ---
    source: Source | None = field(default=None, compare=False, metadata={"yaml": False})
    # Dotted YAML path -> (line, col) of every key the YAML set, e.g. "parameters.model".
    locations: dict[str, tuple[int, int]] = field(
        default_factory=dict, compare=False, repr=False, metadata={"yaml": False})
    # Dotted YAML path -> where a text value's own characters start, to point into it.
    text_spans: dict[str, "TextSpan"] = field(
        default_factory=dict, compare=False, repr=False, metadata={"yaml": False})

    def option(self, name: str) -> str | None:
        """Value of a llama-cpp `options:` entry by any of its spellings; the last entry wins."""
        spellings = OPTION_SPELLINGS.get(name, (name,))
        found = None
        for entry in self.options:
            key, value = split_option(entry)
            if key in spellings:
                found = value
        return found

    def option_bool(self, name: str, default: bool = False) -> bool:
        value = self.option(name)
        return default if value is None else value.lower() in TRUE_WORDS

    def option_int(self, name: str, default: int | None = None) -> int | None:
        value = self.option(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            return default

    @property
    def kv_unified(self) -> bool:
        """One KV pool shared by all slots (each request may use all of context_size) unless
        `options: kv_unified:false` asks for LocalAI's split of context_size / slots."""
        return self.option_bool("kv_unified", True)

    def model_file(self, models_path: Path) -> Path:
        """The GGUF file LocalAI loads: `<models-path>/<parameters.model>`."""
        return Path(models_path) / self.parameters.model

    def given(self, path: str) -> bool:
        """Whether the YAML set this dotted key (e.g. "parameters.temperature", "mmap")."""
        return path in self.locations


