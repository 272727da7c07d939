"""The engine loop: one thread owns the llama context and runs request -> batch -> decode -> sample -> detokenize."""
from __future__ import annotations

import ctypes
import itertools
import logging
import math
import queue
import threading
from concurrent.futures import Future
from typing import Callable

import llama_cpp as lc
import numpy as np

from server.engine.detok import TextAssembler
from server.engine.runtime import LlamaRuntime, LoadSettings
from server.engine.sampling import SamplerChain
from server.engine.scheduler import BatchEntry, KvBudget, Scheduler
from server.engine.slot import Job, Slot, SlotState
from server.engine.types import Event, Failed, Finished, GenerateRequest, ModelInfo, TextDelta, Usage
from server.errors import EngineFailed, FeatureDisabled, InvalidRequest, LlamaslotsError, PromptTooLong, ServerBusy

log = logging.getLogger("llamaslots.engine")


class _Batch:
    """A llama_batch reused every step; every row is checked before llama_decode sees it."""

    def __init__(self, capacity: int, n_seq: int, n_vocab: int):
        self.capacity = capacity
        self.n_seq = n_seq
        self.n_vocab = n_vocab
        self.raw = lc.llama_batch_init(capacity, 0, 1)
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq_id: int, output: bool) -> int:
        # Each of these, unchecked, is a GGML_ASSERT abort or an "invalid batch" in C.
        if self.n >= self.capacity:
            raise EngineFailed(f"batch overflow ({self.capacity} rows)")
        if not 0 <= seq_id < self.n_seq:
            raise EngineFailed(f"sequence id {seq_id} outside 0..{self.n_seq - 1}")
        if not 0 <= token < self.n_vocab:
            raise EngineFailed(f"token id {token} outside the vocabulary")
        i = self.n
        b = self.raw
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq_id
        b.logits[i] = 1 if output else 0
        self.n += 1
        return i

    def free(self) -> None:
        if self.raw is not None:
            lc.llama_batch_free(self.raw)
            self.raw = None


class Engine:
    """Continuous batching over N slots of one model.

    Every llama.cpp object of the model is created, used and freed by the engine thread.
    Other threads talk to it only through `_commands`; events go back through each
    request's sink, called on the engine thread.
    """

    def __init__(self, opts: LoadSettings, *, name: str = "model", after_step: Callable[[], None] | None = None):
        self.name = name
        # Called on the engine thread after every loop turn: lets a worker send one
        # message per step instead of one per token.
        self._after_step = after_step
        self._commands: queue.Queue = queue.Queue()
        self._ids = itertools.count(1)
        self._ready: Future = Future()
        self._thread = threading.Thread(target=self._main, args=(opts,), name=f"engine-{name}", daemon=True)
        self._thread.start()
        self.info: ModelInfo = self._ready.result()  # raises ModelLoadFailed

    # -- API for other threads ---------------------------------------------------------
    def submit(self, req: GenerateRequest, sink: Callable[[Event], None]) -> int:
        rid = next(self._ids)
        self.submit_with_id(rid, req, sink)
        return rid

    def submit_with_id(self, rid: int, req: GenerateRequest, sink: Callable[[Event], None]) -> None:
        """Submit under an id chosen by the caller (a worker's front-end numbers requests)."""
        self._commands.put(("submit", rid, req, sink))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def cancel(self, rid: int) -> None:
        self._commands.put(("cancel", rid))

    def call(self, fn: Callable[["Engine"], object]) -> Future:
        """Run fn(engine) on the engine thread between steps (tokenize, embed)."""
        fut: Future = Future()
        self._commands.put(("call", fn, fut))
        return fut

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> Future:
        return self.call(lambda e: e.rt.tokenize(text, add_special=add_special, parse_special=parse_special))

    def embed(self, texts: list[str]) -> Future:
        return self.call(lambda e: e._embed(texts))

    def close(self, timeout: float = 30.0) -> None:
        self._commands.put(("stop",))
        self._thread.join(timeout)

    # -- engine thread ---------------------------------------------------------------
    def _main(self, opts: LoadSettings) -> None:
        try:
            self.rt = LlamaRuntime(opts)
        except BaseException as exc:  # reported to the constructor's caller
            self._ready.set_exception(exc)
            return
        rt = self.rt
        self.slots = [Slot(seq_id=i) for i in range(opts.n_slots)]
        self.embed_seqs = list(range(opts.n_slots, opts.n_slots + rt.n_embed_seqs))
        self.scheduler = Scheduler(rt.n_batch, KvBudget(rt.n_ctx, rt.n_ctx_seq, opts.kv_unified))
        self.batch = _Batch(rt.n_batch, rt.n_seq, rt.n_vocab)
        self.cache_ram_bytes = max(0, opts.cache_ram_mib) << 20
        self.waiting: list[Job] = []
        self.jobs: dict[int, Job] = {}
        self.cancelled: set[int] = set()
        bos, eos = rt.bos_token, rt.eos_token
        self._ready.set_result(
            ModelInfo(
                n_ctx=rt.n_ctx if opts.kv_unified else rt.n_ctx_seq * opts.n_slots,
                n_ctx_seq=rt.n_ctx_seq,
                n_slots=opts.n_slots,
                n_vocab=rt.n_vocab,
                n_ctx_train=rt.n_ctx_train,
                kv_unified=opts.kv_unified,
                embeddings=opts.embeddings,
                chat_template=rt.meta("tokenizer.chat_template"),
                bos_text=rt.token_text(bos),
                eos_text=rt.token_text(eos),
            )
        )
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        while True:
            idle = not self.waiting and not any(s.busy for s in self.slots)
            try:
                cmd = self._commands.get(block=idle)
            except queue.Empty:
                cmd = None
            while cmd is not None:
                if cmd[0] == "stop":
                    return
                self._handle(cmd)
                try:
                    cmd = self._commands.get_nowait()
                except queue.Empty:
                    cmd = None
            self._apply_cancellations()
            self._admit()
            self._step()
            if self._after_step is not None:
                self._after_step()

    def _handle(self, cmd: tuple) -> None:
        kind = cmd[0]
        if kind == "submit":
            _, rid, req, sink = cmd
            self._enqueue(rid, req, sink)
        elif kind == "cancel":
            self.cancelled.add(cmd[1])
        elif kind == "call":
            _, fn, fut = cmd
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(self))
                except BaseException as exc:
                    fut.set_exception(exc)

    def _enqueue(self, rid: int, req: GenerateRequest, sink: Callable[[Event], None]) -> None:
        try:
            if isinstance(req.prompt, str):
                tokens = self.rt.tokenize(req.prompt, add_special=req.add_special, parse_special=True)
            else:
                tokens = list(req.prompt)
                bad = [t for t in tokens if not 0 <= t < self.rt.n_vocab]
                if bad:
                    raise InvalidRequest(f"prompt token {bad[0]} is outside the vocabulary (0..{self.rt.n_vocab - 1})")
            if not tokens:
                raise InvalidRequest("the prompt is empty after tokenization")
            # One cell must stay free for the first generated token's successor.
            if len(tokens) >= self.rt.n_ctx_seq:
                raise PromptTooLong(len(tokens), self.rt.n_ctx_seq)
            mt = req.params.max_tokens
            if mt is not None and mt < 0:
                raise InvalidRequest("max_tokens must be >= 0")
        except LlamaslotsError as exc:
            sink(Failed(exc))
            return
        job = Job(rid=rid, prompt=tokens, params=req.params, sink=sink)
        self.jobs[rid] = job
        self.waiting.append(job)

    def _apply_cancellations(self) -> None:
        if not self.cancelled:
            return
        for job in [j for j in self.waiting if j.rid in self.cancelled]:
            self.waiting.remove(job)
            self._emit_finish(job, "cancelled", 0, 0, 0)
        for s in self.slots:
            if s.job is not None and s.job.rid in self.cancelled:
                self._finish(s, "cancelled")
        self.cancelled.clear()

    def _admit(self) -> None:
        while self.waiting:
            job = self.waiting[0]
            if job.params.max_tokens == 0:
                self.waiting.pop(0)
                self._emit_finish(job, "length", len(job.prompt), 0, 0)
                continue
            pick = self.scheduler.pick_slot(self.slots, job.prompt)
            if pick is None:
                return
            slot, n_keep = pick
            missing = self.scheduler.admission_room(self.slots, slot, n_keep, len(job.prompt))
            if missing > 0:
                self._reclaim_idle(missing, keep=slot)
                if self.scheduler.admission_room(self.slots, slot, n_keep, len(job.prompt)) > 0:
                    if any(s.busy for s in self.slots):
                        return  # wait for running requests to free cells
                    # Nothing runs and it still does not fit: only the cache is in the way.
                    n_keep = 0
            self.waiting.pop(0)
            self._start(slot, job, n_keep)

    def _start(self, slot: Slot, job: Job, n_keep: int) -> None:
        rt = self.rt
        if slot.saved_state is not None:
            if n_keep > 0 and not self._restore(slot):
                n_keep = 0
            slot.saved_state, slot.saved_tokens = None, []
        if not lc.llama_memory_seq_rm(rt.mem, slot.seq_id, n_keep, -1):
            lc.llama_memory_seq_rm(rt.mem, slot.seq_id, -1, -1)
            n_keep = 0
        slot.assign(job, n_keep)
        try:
            slot.sampler = SamplerChain(job.params.sampling, vocab=rt.vocab, n_vocab=rt.n_vocab, eog_tokens=rt.eog_tokens)
        except LlamaslotsError as exc:
            slot.release()
            self.jobs.pop(job.rid, None)
            job.sink(Failed(exc))
            return
        p = job.params.sampling
        if p.repeat_last_n != 0:
            window = job.prompt if p.repeat_last_n < 0 else job.prompt[-p.repeat_last_n :]
            slot.sampler.prime(window)
        slot.assembler = TextAssembler(job.params.stop)

    # -- idle prompt caches in host memory ---------------------------------------------
    def _offload_idle(self) -> None:
        """Unified cache: move idle slots' cached prompts to host memory while others run.

        In one shared pool every sequence's attention spans all used cells, so idle caches
        slow every running request (about 15% at 8 requests with 16 idle caches, measured);
        in RAM they cost nothing until a request reuses them (a copy back, no prefill).
        """
        busy = any(s.busy for s in self.slots)
        if not (busy and self.scheduler.budget.unified and self.cache_ram_bytes > 0):
            return
        for s in self.slots:
            if s.state is SlotState.IDLE and s.cache:
                size = lc.llama_state_seq_get_size(self.rt.ctx, s.seq_id)
                buf = (ctypes.c_uint8 * size)() if 0 < size <= self.cache_ram_bytes else None
                if buf is not None and lc.llama_state_seq_get_data(self.rt.ctx, buf, size, s.seq_id) == size:
                    s.saved_state, s.saved_tokens = buf, list(s.cache)
                self._drop_cache(s)
        saved = sorted((s for s in self.slots if s.saved_state is not None), key=lambda s: s.last_used)
        total = sum(len(s.saved_state) for s in saved)
        for s in saved:
            if total <= self.cache_ram_bytes:
                break
            total -= len(s.saved_state)
            s.saved_state, s.saved_tokens = None, []

    def _restore(self, slot: Slot) -> bool:
        """Put a saved cache back into the slot's (empty) sequence."""
        need = len(slot.saved_tokens)
        budget = self.scheduler.budget
        if budget.unified and budget.free(self.slots) < need:
            self._reclaim_idle(need - budget.free(self.slots), keep=slot)
            if budget.free(self.slots) < need:
                return False
        state = slot.saved_state
        lc.llama_memory_seq_rm(self.rt.mem, slot.seq_id, -1, -1)
        if lc.llama_state_seq_set_data(self.rt.ctx, state, len(state), slot.seq_id) != len(state):
            lc.llama_memory_seq_rm(self.rt.mem, slot.seq_id, -1, -1)
            slot.cache.clear()
            return False
        slot.cache[:] = slot.saved_tokens
        return True

    def _drop_cache(self, s: Slot) -> int:
        n = len(s.cache)
        if n:
            lc.llama_memory_seq_rm(self.rt.mem, s.seq_id, -1, -1)
            s.cache.clear()
        return n

    def _reclaim_idle(self, cells: int, keep: Slot | None = None) -> int:
        """Drop idle slots' cached prompts, least recently used first."""
        freed = 0
        for s in sorted(self.slots, key=lambda s: s.last_used):
            if freed >= cells:
                break
            if s.state is SlotState.IDLE and s is not keep:
                freed += self._drop_cache(s)
        return freed

    def _make_room(self) -> None:
        """Unified cache: cells for this step, taken from idle caches before anyone's work.

        Every generating slot needs one cell and admitted prompts need theirs; idle slots'
        cached prompts give way first. Only if generating slots still lack cells does the
        longest-running generation end with "length".
        """
        budget = self.scheduler.budget
        if not budget.unified:
            return
        n_gen = sum(1 for s in self.slots if s.state is SlotState.GENERATING)
        prompt_need = sum(s.remaining_prompt() for s in self.slots if s.state is SlotState.PROMPT)
        want = n_gen + min(prompt_need, max(0, self.rt.n_batch - n_gen))
        short = want - budget.free(self.slots)
        if short > 0:
            self._reclaim_idle(short)
        while True:
            gen = [s for s in self.slots if s.state is SlotState.GENERATING]
            if not gen or len(gen) <= budget.free(self.slots):
                return
            victim = max(gen, key=lambda s: len(s.cache))
            log.info("%s: KV cache full; finishing the longest generation (slot %d) with length", self.name, victim.seq_id)
            self._finish(victim, "length")
            # Its cells are what the others need: do not keep them as a prompt cache.
            self._drop_cache(victim)

    def _step(self) -> None:
        if not any(s.busy for s in self.slots):
            return
        self._offload_idle()
        self._make_room()
        entries = self.scheduler.plan(self.slots)
        if not entries:
            if any(s.state is SlotState.PROMPT for s in self.slots):
                self._reclaim_idle(1 << 30)
            return
        self.batch.clear()
        try:
            for e in entries:
                self._add_entry(e)
        except EngineFailed as exc:
            self._fail_slots([e.slot for e in entries], exc)
            return
        try:
            rc = self._decode()
        except EngineFailed as exc:
            self._fail_slots([e.slot for e in entries], exc)
            return
        if rc != 0:
            self._on_decode_error(rc, entries)
            return
        for e in entries:
            e.slot.cache.extend(e.tokens)
            if e.slot.state is SlotState.PROMPT:
                e.slot.n_prompt_fed += len(e.tokens)
                if e.output:
                    e.slot.state = SlotState.GENERATING
            else:
                e.slot.pending_token = None
        for e in entries:
            if e.output and e.slot.job is not None:
                self._sample(e.slot)

    def _add_entry(self, e: BatchEntry) -> None:
        s = e.slot
        if e.pos0 != len(s.cache):
            raise EngineFailed(f"slot {s.seq_id}: position {e.pos0} does not follow its cache ({len(s.cache)})")
        if e.pos0 + len(e.tokens) > self.rt.n_ctx_seq:
            raise EngineFailed(f"slot {s.seq_id}: positions past the context ({self.rt.n_ctx_seq})")
        last = len(e.tokens) - 1
        for k, tok in enumerate(e.tokens):
            i = self.batch.add(tok, e.pos0 + k, s.seq_id, e.output and k == last)
        s.i_batch = i if e.output else -1

    def _decode(self) -> int:
        b = self.batch
        if not 0 < b.n <= self.rt.n_batch:
            raise EngineFailed(f"batch of {b.n} tokens outside 1..{self.rt.n_batch}")
        b.raw.n_tokens = b.n
        return lc.llama_decode(self.rt.ctx, b.raw)

    def _on_decode_error(self, rc: int, entries: list[BatchEntry]) -> None:
        if rc == 1:
            # No KV room although our count said there was (fragmentation): free idle
            # caches; the plan is rebuilt next step, and if it still fails the longest
            # generation gives way.
            if self._reclaim_idle(1 << 30) == 0:
                gen = [s for s in self.slots if s.state is SlotState.GENERATING]
                if gen:
                    victim = max(gen, key=lambda s: len(s.cache))
                    self._finish(victim, "length")
                    self._drop_cache(victim)
                else:
                    self._fail_slots([e.slot for e in entries], EngineFailed("no room in the KV cache for this prompt"))
            return
        self._fail_slots({e.slot for e in entries}, EngineFailed(f"llama_decode failed (code {rc})"))

    def _fail_slots(self, slots, exc: LlamaslotsError) -> None:
        for s in slots:
            # The sequence's cells are in an unknown state: drop them all.
            lc.llama_memory_seq_rm(self.rt.mem, s.seq_id, -1, -1)
            s.cache.clear()
            job = s.job
            if job is not None:
                self._close_slot(s)
                self.jobs.pop(job.rid, None)
                job.sink(Failed(exc))

    def _sample(self, s: Slot) -> None:
        job = s.job
        i = s.i_batch
        # Sampling a row without logits is a GGML_ASSERT abort in llama.cpp: check first.
        if not (0 <= i < self.batch.n and self.batch.raw.logits[i]) or s.sampler is None:
            self._fail_slots([s], EngineFailed(f"slot {s.seq_id}: no logits at batch row {i}"))
            return
        tok = s.sampler.sample(self.rt.ctx, i)
        s.i_batch = -1
        if self.rt.is_eog(tok):
            self._finish(s, "stop")
            return
        s.n_generated += 1
        text = s.assembler.feed(self.rt.piece(tok))
        if text:
            job.sink(TextDelta(text))
        if s.assembler.stopped is not None:
            self._finish(s, "stop")
            return
        mt = job.params.max_tokens
        # prompt + completion never exceeds the per-request context (the last sampled
        # token would be fed at position len(cache), which must stay inside it).
        if (mt is not None and s.n_generated >= mt) or len(s.cache) + 1 >= self.rt.n_ctx_seq:
            self._finish(s, "length")
            return
        s.pending_token = tok

    def _close_slot(self, s: Slot) -> None:
        if s.sampler is not None:
            s.sampler.close()
        s.release()

    def _finish(self, s: Slot, reason: str) -> None:
        job = s.job
        if job is None:
            return
        if reason != "stop" or s.assembler.stopped is None:
            tail = s.assembler.finish() if reason != "cancelled" else ""
            if tail:
                job.sink(TextDelta(tail))
        n_prompt, n_gen, n_cached = len(job.prompt), s.n_generated, s.n_cached_prompt
        self._close_slot(s)
        self._emit_finish(job, reason, n_prompt, n_gen, n_cached)

    def _emit_finish(self, job: Job, reason: str, n_prompt: int, n_gen: int, n_cached: int) -> None:
        self.jobs.pop(job.rid, None)
        job.sink(Finished(reason, Usage(n_prompt, n_gen, n_cached)))

    # -- embeddings ------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of several inputs, as many per decode as sequences and n_batch allow,
        each mean-pooled over its own rows (or pooled by the model) and L2-normalized."""
        if not self.embed_seqs:
            raise FeatureDisabled(f"model {self.name} does not serve embeddings (set `embeddings: true` in its config)")
        rt = self.rt
        limit = min(rt.n_batch, rt.n_ctx_seq)
        inputs = []
        for text in texts:
            tokens = rt.tokenize(text, add_special=True, parse_special=False)
            if not tokens:
                raise InvalidRequest("an embeddings input is empty")
            if len(tokens) > limit:
                raise PromptTooLong(len(tokens), limit)
            inputs.append(tokens)
        out: list[list[float]] = []
        while len(out) < len(inputs):
            group: list[tuple[int, list[int]]] = []  # (seq id, batch rows)
            n_tokens = 0
            for tokens in inputs[len(out):]:
                if len(group) == len(self.embed_seqs) or n_tokens + len(tokens) > rt.n_batch:
                    break
                group.append((self.embed_seqs[len(group)], tokens))
                n_tokens += len(tokens)
            out.extend(self._embed_group(group, n_tokens))
        return out

    def _embed_group(self, group: list[tuple[int, list[int]]], n_tokens: int) -> list[list[float]]:
        rt = self.rt
        if self.scheduler.budget.unified:
            short = n_tokens - self.scheduler.budget.free(self.slots)
            if short > 0 and self._reclaim_idle(short) < short:
                raise ServerBusy("the KV cache is full with running generations; retry the embeddings request")
        self.batch.clear()
        rows: list[list[int]] = []
        for seq, tokens in group:
            lc.llama_memory_seq_rm(rt.mem, seq, -1, -1)
            rows.append([self.batch.add(t, pos, seq, True) for pos, t in enumerate(tokens)])
        lc.llama_set_embeddings(rt.ctx, True)
        try:
            rc = self._decode()
            if rc != 0:
                raise EngineFailed(f"llama_decode failed for embeddings (code {rc})")
            return [self._pooled(r, seq) for (seq, _), r in zip(group, rows)]
        finally:
            lc.llama_set_embeddings(rt.ctx, False)
            for seq, _ in group:
                lc.llama_memory_seq_rm(rt.mem, seq, -1, -1)

    def _pooled(self, rows: list[int], seq: int) -> list[float]:
        rt = self.rt
        if rt.pooling_type == lc.LLAMA_POOLING_TYPE_NONE:
            vecs = [np.ctypeslib.as_array(lc.llama_get_embeddings_ith(rt.ctx, i), shape=(rt.n_embd,)) for i in rows]
            v = np.mean(np.stack(vecs), axis=0)
        else:
            v = np.ctypeslib.as_array(lc.llama_get_embeddings_seq(rt.ctx, seq), shape=(rt.n_embd,)).copy()
        norm = float(np.linalg.norm(v))
        if norm > 0 and math.isfinite(norm):
            v = v / norm
        return [float(x) for x in v]

    def _shutdown(self) -> None:
        for job in self.waiting:
            self._emit_finish(job, "cancelled", 0, 0, 0)
        self.waiting.clear()
        for s in self.slots:
            if s.job is not None:
                self._finish(s, "cancelled")
        if self._after_step is not None:
            self._after_step()
        self.batch.free()
        self.rt.close()

    def stats(self) -> Future:
        """Slot states, read on the engine thread (for /slots-style introspection and tests)."""
        return self.call(lambda e: e._stats())

    def _stats(self) -> dict:
        return {
            "slots": [
                {"id": s.seq_id, "state": s.state.value, "n_cached": len(s.cache),
                 "n_saved": len(s.saved_tokens), "n_generated": s.n_generated}
                for s in self.slots
            ],
            "waiting": len(self.waiting),
        }
