"""A model config -> the settings its model is loaded with: the one resolution `run` and check-config share."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from compat.config_schema import ModelConfig

log = logging.getLogger("llamaslots.compat")

# llama-server's default slot count (LocalAI's is 1: no batching at all).
DEFAULT_SLOTS = 4
# llama.cpp's default n_batch, as LocalAI sends it when `batch` is unset.
DEFAULT_BATCH = 512
# All layers on the GPU (LocalAI's default for llama-cpp).
ALL_GPU_LAYERS = 99999999
# Upper bound when context_size is absent (LocalAI v4.6.1: min(n_ctx_train, 8192)).
DEFAULT_CTX_CAP = 8192
# llama-server's --cache-ram default (MiB), LocalAI's `cache_ram` option.
DEFAULT_CACHE_RAM_MIB = 8192


def physical_cores() -> int:
    """Physical CPU cores (LocalAI's --threads default), logical count when unknown."""
    try:
        seen = set()
        physical = core = None
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not key and core is not None:
                    seen.add((physical, core))
                    physical = core = None
        if core is not None:
            seen.add((physical, core))
        if seen:
            return len(seen)
    except OSError:
        pass
    return os.cpu_count() or 4


@dataclass(frozen=True)
class ServerDefaults:
    """What the server was told that a model config may leave to it (flags and env)."""

    threads: int | None = None  # --threads / LOCALAI_THREADS
    context_size: int | None = None  # --context-size
    parallel: int | None = None  # LLAMACPP_PARALLEL


@dataclass(frozen=True)
class LoadSettings:
    """Load-time settings of one model, resolved from its config: what the engine opens."""

    model_path: Path
    n_ctx: int | None = None  # None -> from the model's trained context (context_for)
    n_slots: int = DEFAULT_SLOTS
    kv_unified: bool = True
    n_batch: int = DEFAULT_BATCH
    n_ubatch: int = DEFAULT_BATCH
    n_threads: int = field(default_factory=physical_cores)
    n_threads_batch: int | None = None
    n_gpu_layers: int = ALL_GPU_LAYERS
    use_mmap: bool = True
    use_mlock: bool = False
    flash_attention: str = "auto"
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    tensor_split: tuple[float, ...] = ()
    main_gpu: int = 0
    embeddings: bool = False
    # Host memory for idle slots' prompt caches moved out of a unified KV cache (MiB; 0 keeps
    # them in the KV cache).
    cache_ram_mib: int = DEFAULT_CACHE_RAM_MIB
    # Sliding-window models: a window cache as large as the whole context (llama.cpp's C
    # default), so cached prompts stay reusable; false saves memory (llama-server's default)
    # at the cost of more re-prefills.
    swa_full: bool = True
    default_ctx_cap: int = DEFAULT_CTX_CAP

    def context_for(self, n_ctx_train: int) -> int:
        """Total KV context for a model trained on n_ctx_train tokens."""
        if self.n_ctx and self.n_ctx > 0:
            return self.n_ctx
        return min(n_ctx_train or 4096, self.default_ctx_cap)

    def per_request_context(self, n_ctx: int) -> int:
        """The most one request may use: all of it when unified, else LocalAI's split."""
        return n_ctx if self.kv_unified else n_ctx // self.n_slots


def slot_count(cfg: ModelConfig, llamacpp_parallel: int | None = None) -> int:
    """Slots this server gives the model: `options: parallel:N`, else LLAMACPP_PARALLEL, else 4."""
    return max(cfg.option_int("parallel") or llamacpp_parallel or DEFAULT_SLOTS, 1)


def tensor_split(text: str) -> tuple[float, ...]:
    """LocalAI's `tensor_split: "3,1"` (or "3/1") as proportions."""
    return tuple(float(x) for x in (text or "").replace("/", ",").split(",") if x.strip())


def load_settings(cfg: ModelConfig, models_path: Path, defaults: ServerDefaults | None = None) -> LoadSettings:
    """LocalAI's config fields -> llama.cpp load settings (LocalAI's core/backend/options.go).

    The KV cache is unified unless `options: [kv_unified:false]` asks for LocalAI's split.
    Raises ValueError for values that cannot be used (check-config names them first).
    """
    defaults = defaults or ServerDefaults()
    batch = cfg.parameters.batch or DEFAULT_BATCH
    cache_ram = cfg.option_int("cache_ram")
    return LoadSettings(
        model_path=cfg.model_file(models_path),
        n_ctx=cfg.context_size if cfg.context_size and cfg.context_size > 0 else defaults.context_size,
        n_slots=slot_count(cfg, defaults.parallel),
        kv_unified=cfg.kv_unified,
        n_batch=batch,
        n_ubatch=cfg.option_int("n_ubatch") or batch,
        n_threads=cfg.threads or defaults.threads or physical_cores(),
        n_threads_batch=cfg.option_int("threads_batch"),
        n_gpu_layers=cfg.gpu_layers if cfg.gpu_layers is not None else ALL_GPU_LAYERS,
        use_mmap=cfg.mmap,
        use_mlock=cfg.mmlock,
        flash_attention=cfg.flash_attention or "auto",
        cache_type_k=cfg.cache_type_k or None,
        cache_type_v=cfg.cache_type_v or None,
        tensor_split=tensor_split(cfg.tensor_split),
        main_gpu=int(cfg.main_gpu) if cfg.main_gpu else 0,
        embeddings=bool(cfg.embeddings),
        # LocalAI's -1 (and absent) means llama-server's default.
        cache_ram_mib=DEFAULT_CACHE_RAM_MIB if cache_ram is None or cache_ram < 0 else cache_ram,
        swa_full=cfg.option_bool("swa_full", True),
    )


def gguf_context_length(path: Path) -> int | None:
    """The trained context length a GGUF file declares (`<arch>.context_length`), if readable."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                return None
        from gguf import GGUFReader  # reads the header only; no llama.cpp

        reader = GGUFReader(str(path), "r")
        arch = reader.fields.get("general.architecture")
        if arch is None:
            return None
        value = reader.fields.get(f"{arch.contents()}.context_length")
        return int(value.contents()) if value is not None else None
    except (OSError, ValueError, KeyError, IndexError):
        return None
