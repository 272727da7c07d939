"""A llama_batch reused every step, filled through numpy views; every row is checked before llama_decode sees it."""
from __future__ import annotations

import ctypes

import llama_cpp as lc
import numpy as np

from server.errors import EngineFailed


class Batch:
    """Rows are written a whole entry at a time into numpy views of the batch's own arrays.

    llama_batch_init gives each row a separately allocated seq-id array; the rows point into
    one contiguous array of ours instead (so a slice assignment sets them all), and the
    original pointers are put back before llama_batch_free frees them.
    """

    def __init__(self, capacity: int, n_seq: int, n_vocab: int):
        self.capacity = capacity
        self.n_seq = n_seq
        self.n_vocab = n_vocab
        self.raw = lc.llama_batch_init(capacity, 0, 1)
        raw = self.raw
        self.token = np.ctypeslib.as_array(raw.token, shape=(capacity,))
        self.pos = np.ctypeslib.as_array(raw.pos, shape=(capacity,))
        self.logits = np.ctypeslib.as_array(raw.logits, shape=(capacity,))
        np.ctypeslib.as_array(raw.n_seq_id, shape=(capacity,))[:] = 1
        self._seq_store = (ctypes.c_int32 * capacity)()
        self.seq = np.ctypeslib.as_array(self._seq_store)
        # Addresses as ints: indexing a ctypes pointer array gives views of its memory, which
        # the assignment below would overwrite.
        self._own_seq_ptrs = [ctypes.cast(raw.seq_id[i], ctypes.c_void_p).value for i in range(capacity)]
        base = ctypes.addressof(self._seq_store)
        self._int_p = ctypes.POINTER(ctypes.c_int32)
        for i in range(capacity):
            raw.seq_id[i] = ctypes.cast(base + 4 * i, self._int_p)
        self.n = 0
        self.n_outputs = 0
        # Row -> its place among the step's output rows (= its row in llama_get_logits).
        self.out_ord = np.full(capacity, -1, dtype=np.int32)

    def clear(self) -> None:
        self.n = 0
        self.n_outputs = 0

    def add(self, tokens: list[int], pos0: int, seq_id: int, output: bool) -> int:
        """Rows for consecutive tokens of one sequence; returns the row of the last one.

        Each check stands for a GGML_ASSERT abort or an "invalid batch" in C.
        """
        k = len(tokens)
        n = self.n
        if k == 0:
            raise EngineFailed("an empty batch entry")
        if n + k > self.capacity:
            raise EngineFailed(f"batch overflow ({self.capacity} rows)")
        if not 0 <= seq_id < self.n_seq:
            raise EngineFailed(f"sequence id {seq_id} outside 0..{self.n_seq - 1}")
        if pos0 < 0:
            raise EngineFailed(f"negative position {pos0}")
        if k == 1:  # a decode step's row: scalars are cheaper than array slices
            tok = tokens[0]
            if not 0 <= tok < self.n_vocab:
                raise EngineFailed(f"token id {tok} outside the vocabulary")
            self.token[n], self.pos[n], self.seq[n] = tok, pos0, seq_id
            self.logits[n] = 1 if output else 0
            self.out_ord[n] = -1
            if output:
                self.out_ord[n] = self.n_outputs
                self.n_outputs += 1
            self.n = n + 1
            return n
        arr = np.asarray(tokens, dtype=np.int32)
        if int(arr.min()) < 0 or int(arr.max()) >= self.n_vocab:
            bad = int(arr.min()) if int(arr.min()) < 0 else int(arr.max())
            raise EngineFailed(f"token id {bad} outside the vocabulary")
        self.token[n:n + k] = arr
        self.pos[n:n + k] = np.arange(pos0, pos0 + k, dtype=np.int32)
        self.seq[n:n + k] = seq_id
        self.logits[n:n + k] = 0
        self.out_ord[n:n + k] = -1
        if output:
            self.logits[n + k - 1] = 1
            self.out_ord[n + k - 1] = self.n_outputs
            self.n_outputs += 1
        self.n = n + k
        return n + k - 1

    def is_output(self, row: int) -> bool:
        return 0 <= row < self.n and bool(self.logits[row])

    def free(self) -> None:
        if self.raw is not None:
            for i, address in enumerate(self._own_seq_ptrs):
                if address:
                    self.raw.seq_id[i] = ctypes.cast(address, self._int_p)
            lc.llama_batch_free(self.raw)
            self.raw = None
