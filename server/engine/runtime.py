"""Loading a GGUF into a llama model + context, and the vocabulary helpers around it."""
from __future__ import annotations

import collections
import ctypes
import logging
import threading
from pathlib import Path

import llama_cpp as lc

from compat.model_settings import LoadSettings
from server.errors import ModelLoadFailed

log = logging.getLogger("llamaslots.runtime")

# llama.cpp's logger is process-global, so its capture is too: a ring of recent lines from
# which a load failure reports llama.cpp's own reason instead of a bare "failed to load".
_LOG_LINES: collections.deque[tuple[int, str]] = collections.deque(maxlen=200)
_GGML_WARN, _GGML_ERROR = 3, 4
_LOG_LOCK = threading.Lock()
_LLAMA_LOG = logging.getLogger("llamaslots.llama_cpp")
_partial_line: list[str] = []


@lc.llama_log_callback
def _log_callback(level, text, _user_data):  # pragma: no cover - called from C
    try:
        msg = text.decode("utf-8", errors="replace")
    except Exception:
        return
    with _LOG_LOCK:
        _partial_line.append(msg)
        if not msg.endswith("\n"):
            return
        line = "".join(_partial_line).rstrip("\n")
        _partial_line.clear()
        _LOG_LINES.append((level, line))
    _LLAMA_LOG.log(logging.WARNING if level in (_GGML_WARN, _GGML_ERROR) else logging.DEBUG, "%s", line)


_backend_ready = False
_backend_lock = threading.Lock()


def init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
            lc.llama_backend_init()
            _backend_ready = True


def _recent_errors(since: int) -> str:
    """What llama.cpp said went wrong since log line `since`: its warnings and errors."""
    with _LOG_LOCK:
        lines = list(_LOG_LINES)[since:]
    keep = [text for level, text in lines if level in (_GGML_WARN, _GGML_ERROR)]
    if not keep and lines:
        keep = [lines[-1][1]]
    return "; ".join(keep[-5:])


_FLASH = {"auto": -1, "on": 1, "off": 0}
EMBED_SEQS = 4
_KV_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30}


def _load_mode(mmap: bool, mlock: bool) -> int:
    if mmap and mlock:
        return lc.LLAMA_LOAD_MODE_MMAP_MLOCK
    if mlock:
        return lc.LLAMA_LOAD_MODE_MLOCK
    if mmap:
        return lc.LLAMA_LOAD_MODE_MMAP
    return lc.LLAMA_LOAD_MODE_NONE


class LlamaRuntime:
    """A loaded model and its one context. Owned by the engine thread after construction."""

    def __init__(self, opts: LoadSettings):
        init_backend()
        self.opts = opts
        path = Path(opts.model_path)
        if not path.is_file():
            raise ModelLoadFailed(path.name, f"model file not found: {path}")
        mark = len(_LOG_LINES)
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = opts.n_gpu_layers
        mp.load_mode = _load_mode(opts.use_mmap, opts.use_mlock)
        mp.main_gpu = opts.main_gpu
        self._tensor_split = None
        if opts.tensor_split:
            n_dev = lc.llama_max_devices()
            arr = (ctypes.c_float * n_dev)(*([0.0] * n_dev))
            for i, v in enumerate(opts.tensor_split[:n_dev]):
                arr[i] = v
            self._tensor_split = arr  # must outlive the load call
            mp.tensor_split = arr
        self.model = lc.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise ModelLoadFailed(path.name, _recent_errors(mark) or "llama.cpp could not read the file")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self.model)
        self.n_embd = lc.llama_model_n_embd(self.model)

        n_ctx = opts.context_for(self.n_ctx_train)
        if not opts.n_ctx:
            log.info("%s: no context_size set; using %d (trained %d)", path.name, n_ctx, self.n_ctx_train)
        # Sequences of their own for embeddings, so they never wait for a generation slot
        # and several inputs are pooled per sequence in one decode. A split cache gives
        # each sequence a stream of its own, so it gets one.
        self.n_embed_seqs = (EMBED_SEQS if opts.kv_unified else 1) if opts.embeddings else 0
        self.n_seq = opts.n_slots + self.n_embed_seqs
        if self.n_seq > lc.llama_max_parallel_sequences():
            lc.llama_model_free(self.model)
            raise ModelLoadFailed(path.name, f"{opts.n_slots} slots exceed llama.cpp's limit")
        if not opts.kv_unified:
            # Split cache: each slot gets n_ctx / n_slots (LocalAI's behaviour); the
            # embeddings sequence gets a stream of its own on top.
            n_ctx = n_ctx * self.n_seq // opts.n_slots
        n_batch = max(opts.n_batch, self.n_seq)
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = min(opts.n_ubatch, n_batch)
        cp.n_seq_max = self.n_seq
        cp.n_threads = opts.n_threads
        cp.n_threads_batch = opts.n_threads_batch or opts.n_threads
        cp.kv_unified = opts.kv_unified
        cp.flash_attn_type = _FLASH.get(opts.flash_attention, -1)
        cp.no_perf = True
        cp.embeddings = False
        for attr, name in (("type_k", opts.cache_type_k), ("type_v", opts.cache_type_v)):
            if name:
                if name not in _KV_TYPES:
                    lc.llama_model_free(self.model)
                    raise ModelLoadFailed(path.name, f"unknown cache type {name!r}; use one of {', '.join(_KV_TYPES)}")
                setattr(cp, attr, _KV_TYPES[name])
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise ModelLoadFailed(path.name, _recent_errors(mark) or "llama.cpp could not create a context")
        self.mem = lc.llama_get_memory(self.ctx)
        self.n_ctx = lc.llama_n_ctx(self.ctx)
        self.n_ctx_seq = lc.llama_n_ctx_seq(self.ctx)
        self.n_batch = lc.llama_n_batch(self.ctx)
        self.pooling_type = lc.llama_pooling_type(self.ctx)
        self._piece_buf = ctypes.create_string_buffer(256)
        self.eog_tokens = [t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(self.vocab, t)]
        self._eog = frozenset(self.eog_tokens)

    # -- vocabulary ------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        while True:
            arr = (lc.llama_token * cap)()
            n = lc.llama_tokenize(self.vocab, data, len(data), arr, cap, add_special, parse_special)
            if n >= 0:
                return list(arr[:n])
            cap = -n

    def piece(self, token: int) -> bytes:
        """Bytes of one token as text; control tokens render as nothing."""
        n = lc.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        return self._piece_buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return token in self._eog

    def token_text(self, token: int | None) -> str:
        if token is None or token < 0 or token >= self.n_vocab:
            return ""
        return lc.llama_vocab_get_text(self.vocab, token).decode("utf-8", errors="replace")

    def meta(self, key: str) -> str | None:
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_model_meta_val_str(self.model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    @property
    def bos_token(self) -> int | None:
        t = lc.llama_vocab_bos(self.vocab)
        return t if t >= 0 else None

    @property
    def eos_token(self) -> int | None:
        t = lc.llama_vocab_eos(self.vocab)
        return t if t >= 0 else None

    def close(self) -> None:
        if getattr(self, "ctx", None):
            lc.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            lc.llama_model_free(self.model)
            self.model = None
