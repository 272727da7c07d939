"""Loading a GGUF into a llama model + context, and the vocabulary helpers around it."""
from __future__ import annotations

import collections
import ctypes
import logging
import threading
import time
from pathlib import Path
from typing import Callable

import llama_cpp as lc
import numpy as np

from compat.model_settings import LoadSettings
from server.engine.batch import Batch
from server.errors import EngineFailed, InvalidRequest, ModelLoadFailed

log = logging.getLogger("llamaslots.runtime")

# llama.cpp's logger is process-global, so its capture is too: a ring of recent lines from
# which a load failure reports llama.cpp's own reason instead of a bare "failed to load".
_LOG_LINES: collections.deque[tuple[int, str]] = collections.deque(maxlen=200)
_GGML_WARN, _GGML_ERROR = 3, 4
_LOG_LOCK = threading.Lock()
_LLAMA_LOG = logging.getLogger("llamaslots.llama_cpp")
_partial_line: list[str] = []
# llama_get_logits returning the address as an int: llama_cpp's binding returns a float
# pointer, whose address takes a ctypes.cast per step to read.
_logits_address = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(("llama_get_logits", lc.llama_cpp._lib))


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


class _LoadProgress:
    """llama.cpp's load-progress callback: a log line at every 10%, and the fraction to `report`."""

    def __init__(self, label: str, report: Callable[[float], None] | None):
        self.label = label
        self.report = report
        self.logged = -1
        self.callback = lc.llama_progress_callback(self._called)

    def _called(self, fraction: float, _user_data: object) -> bool:
        try:
            step = int(fraction * 10 + 1e-6)
            if step > self.logged:
                self.logged = step
                log.info("%s: loading %d%%", self.label, step * 10)
                if self.report is not None:
                    self.report(float(fraction))
        except Exception:  # noqa: BLE001 - an exception must not cross into C; loading goes on
            log.exception("load progress report failed")
        return True  # False would make llama.cpp abandon the load


class LlamaRuntime:
    """A loaded model and its one context. Owned by the engine thread after construction."""

    def __init__(self, opts: LoadSettings, on_progress: Callable[[float], None] | None = None):
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
        progress = _LoadProgress(path.name, on_progress)
        mp.progress_callback = progress.callback  # must outlive the load call, as must `progress`
        started = time.monotonic()
        self.model = lc.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise ModelLoadFailed(path.name, _recent_errors(mark) or "llama.cpp could not read the file")
        log.info("%s: weights loaded in %.1fs", path.name, time.monotonic() - started)
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
        cp.swa_full = opts.swa_full
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
        self.kv_unified = opts.kv_unified
        # Sliding-window attention: a sequence continued at position P needs its cells from
        # P - n_swa + 1 on, which llama.cpp may have pruned (checked before every reuse).
        self.n_swa = lc.llama_model_n_swa(self.model)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._logits_views: dict[tuple[int | None, int], np.ndarray] = {}
        self._special_ids: dict[str, int] = {}
        # Token bytes, filled on first use: one ctypes call per token kind, not per token.
        self._pieces: list[bytes | None] = [None] * self.n_vocab
        self.eog_tokens = [t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(self.vocab, t)]
        self._eog = frozenset(self.eog_tokens)
        self.eog_mask = np.zeros(self.n_vocab, dtype=bool)
        self.eog_mask[self.eog_tokens] = True

    # -- vocabulary ------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(
                f"the text holds a lone surrogate (U+{ord(text[exc.start]):04X} at character {exc.start}), "
                "which is not Unicode text; send valid UTF-16 pairs in JSON escapes") from None
        cap = len(data) + 8
        while True:
            arr = (lc.llama_token * cap)()
            n = lc.llama_tokenize(self.vocab, data, len(data), arr, cap, add_special, parse_special)
            if n >= 0:
                return list(arr[:n])
            cap = -n

    def special_ids(self, texts: tuple[str, ...]) -> frozenset[int]:
        """The token ids of these special-token texts (those that are one token in this vocab)."""
        out = set()
        for text in texts:
            tid = self._special_ids.get(text, -2)
            if tid == -2:
                try:
                    ids = self.tokenize(text, add_special=False, parse_special=True)
                except InvalidRequest:
                    ids = []
                tid = ids[0] if len(ids) == 1 else -1
                self._special_ids[text] = tid
            if tid >= 0:
                out.add(tid)
        return frozenset(out)

    def piece(self, token: int, special: bool = False) -> bytes:
        """Bytes of one token as text; control tokens render as nothing unless `special`."""
        if special:
            return self._special_piece(token)
        cached = self._pieces[token]
        if cached is not None:
            return cached
        n = lc.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        piece = self._piece_buf.raw[:n]
        self._pieces[token] = piece
        return piece

    def _special_piece(self, token: int) -> bytes:
        n = lc.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, True)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, self._piece_buf, len(self._piece_buf), 0, True)
        return self._piece_buf.raw[:n]

    def detokenize(self, tokens: list[int] | tuple[int, ...]) -> str:
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise InvalidRequest(f"token {bad[0]} is outside the vocabulary (0..{self.n_vocab - 1})")
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    # -- KV cache: every sequence id and range checked here (llama.cpp aborts otherwise) --------
    def _check_seq(self, seq: int) -> None:
        if not 0 <= seq < self.n_seq:
            raise EngineFailed(f"sequence id {seq} outside 0..{self.n_seq - 1}")

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove the sequence's cells in [p0, p1) (-1: open end); False if llama.cpp cannot."""
        self._check_seq(seq)
        return bool(lc.llama_memory_seq_rm(self.mem, seq, p0, p1))

    def seq_share(self, src: int, dst: int, n: int) -> bool:
        """dst's sequence becomes src's first n cells (unified cache only: a split cache copies
        whole streams, and llama.cpp aborts on a partial copy there)."""
        self._check_seq(src)
        self._check_seq(dst)
        if not self.kv_unified or src == dst or n <= 0:
            return False
        lc.llama_memory_seq_rm(self.mem, dst, -1, -1)
        lc.llama_memory_seq_cp(self.mem, src, dst, 0, n)
        return self.continues_at(dst, n)

    def continues_at(self, seq: int, pos: int) -> bool:
        """Whether the sequence holds what decoding at `pos` needs: every position below it,
        and for a sliding-window model the window's cells (llama.cpp prunes older ones and
        does not notice when they are missing: the output would silently be wrong)."""
        self._check_seq(seq)
        if pos <= 0:
            return True
        if lc.llama_memory_seq_pos_max(self.mem, seq) != pos - 1:
            return False
        if self.n_swa > 0:
            low = lc.llama_memory_seq_pos_min(self.mem, seq)
            return 0 <= low <= max(0, pos - self.n_swa + 1)
        return True

    def state_save(self, seq: int, limit: int) -> ctypes.Array | None:
        """The sequence's cells as bytes in host memory (None if over `limit` or refused)."""
        self._check_seq(seq)
        size = lc.llama_state_seq_get_size(self.ctx, seq)
        if not 0 < size <= limit:
            return None
        buf = (ctypes.c_uint8 * size)()
        if lc.llama_state_seq_get_data(self.ctx, buf, size, seq) != size:
            return None
        return buf

    def state_restore(self, seq: int, buf: ctypes.Array, n_tokens: int) -> bool:
        """Put saved cells back into an emptied sequence; False (and emptied) if refused."""
        self._check_seq(seq)
        lc.llama_memory_seq_rm(self.mem, seq, -1, -1)
        ok = lc.llama_state_seq_set_data(self.ctx, buf, len(buf), seq) == len(buf)
        if not ok or not self.continues_at(seq, n_tokens):
            lc.llama_memory_seq_rm(self.mem, seq, -1, -1)
            return False
        return True

    # -- decode and logits ------------------------------------------------------------------------
    def decode(self, batch: Batch) -> int:
        if not 0 < batch.n <= self.n_batch:
            raise EngineFailed(f"batch of {batch.n} tokens outside 1..{self.n_batch}")
        batch.raw.n_tokens = batch.n
        return lc.llama_decode(self.ctx, batch.raw)

    def logits(self, n_outputs: int) -> np.ndarray:
        """The step's logits, one row per output row of the batch, in batch order (a view of
        llama.cpp's buffer, valid until the next decode)."""
        address = _logits_address(self.ctx)
        key = (address, n_outputs)
        view = self._logits_views.get(key)
        if view is None:
            if not address or n_outputs <= 0:
                raise EngineFailed("llama.cpp has no logits for this step")
            floats = (ctypes.c_float * (n_outputs * self.n_vocab)).from_address(address)
            view = np.ctypeslib.as_array(floats).reshape(n_outputs, self.n_vocab)
            if len(self._logits_views) > 64:
                self._logits_views.clear()
            self._logits_views[key] = view
        return view

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
