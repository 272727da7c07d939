"""The engine thread: owns the llama context and carries out the scheduler's decisions, step by step.

request -> scheduler.schedule() -> KV operations -> batch -> decode -> sample -> detokenize -> events
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable

import llama_cpp as lc
import numpy as np

from compat.model_settings import LoadSettings
from server.engine.batch import Batch
from server.engine.detok import TextAssembler
from server.engine.messages import (
    Call, CallDone, Cancel, Command, Detokenize, Embed, Message, Stats, StepEvents, StepStats, Stop, Submit,
    Stopped, Tokenize,
)
from server.engine.runtime import LlamaRuntime
from server.engine.sampling import SamplerChain
from server.engine.scheduler import (
    Admit, BatchEntry, DiscardSaved, DropCache, EndWaiting, Fork, KvBudget, Offload, Op, Preempt, Restore,
    Scheduler,
)
from server.engine.slot import Job, Slot, SlotState
from server.engine.types import Event, Failed, Finished, GenerateRequest, ModelInfo, TextDelta, TokenLogprob, Usage
from server.errors import EngineFailed, FeatureDisabled, InvalidRequest, LlamaslotsError, PromptTooLong, ServerBusy

log = logging.getLogger("llamaslots.engine")


def _as_error(exc: BaseException) -> LlamaslotsError:
    """A request's failure as the typed error its client gets (a bug's text, not a traceback)."""
    if isinstance(exc, LlamaslotsError):
        return exc
    return EngineFailed(f"{type(exc).__name__}: {exc}")


class Engine:
    """Continuous batching over N slots of one model.

    Every llama.cpp object of the model is created, used and freed by the engine thread.
    Other threads talk to it only with `put(command)`; what it has to say goes to `emit`,
    called on the engine thread: one StepEvents per step (not per token), one CallDone per
    query.
    """

    def __init__(self, opts: LoadSettings, *, name: str = "model", emit: Callable[[Message], None],
                 on_progress: Callable[[float], None] | None = None):
        self.name = name
        self._emit = emit
        self._on_progress = on_progress
        self._commands: queue.Queue[Command] = queue.Queue()
        self._ready: Future = Future()
        self._thread = threading.Thread(target=self._main, args=(opts,), name=f"engine-{name}", daemon=True)
        self._thread.start()
        self.info: ModelInfo = self._ready.result()  # raises ModelLoadFailed

    # -- API for other threads ---------------------------------------------------------
    def put(self, command: Command) -> None:
        self._commands.put(command)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        self._commands.put(Stop())
        self._thread.join(timeout)

    # -- engine thread ---------------------------------------------------------------
    def _main(self, opts: LoadSettings) -> None:
        try:
            self.rt = LlamaRuntime(opts, on_progress=self._on_progress)
        except BaseException as exc:  # reported to the constructor's caller
            self._ready.set_exception(exc)
            return
        rt = self.rt
        budget = KvBudget(rt.n_ctx, rt.n_ctx_seq, opts.kv_unified)
        self.scheduler = Scheduler(opts.n_slots, rt.n_batch, budget, swa=rt.n_swa > 0)
        self.scheduler.cache_ram_bytes = max(0, opts.cache_ram_mib) << 20
        self.embed_seqs = list(range(opts.n_slots, opts.n_slots + rt.n_embed_seqs))
        self.batch = Batch(rt.n_batch, rt.n_seq, rt.n_vocab)
        self.jobs: dict[int, Job] = {}
        self._texts: list[tuple] = []
        self._ends: list[tuple[int, Event]] = []
        self._step_prompt = self._step_generated = 0
        self._prompt_total = self._sampled_total = 0
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
                bos_text=rt.token_text(rt.bos_token),
                eos_text=rt.token_text(rt.eos_token),
                n_swa=rt.n_swa,
            )
        )
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        while True:
            busy = self.scheduler.has_work
            cmd: Command | None = None
            if not (busy and self._commands.empty()):  # a step with no command raises no Empty
                try:
                    cmd = self._commands.get(block=not busy)
                except queue.Empty:
                    cmd = None
            while cmd is not None:
                if isinstance(cmd, Stop):
                    return
                self._handle(cmd)
                try:
                    cmd = self._commands.get_nowait()
                except queue.Empty:
                    cmd = None
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - a bug in one step must not end the engine
                log.error("%s: engine step failed; failing the requests in it", self.name, exc_info=exc)
                self._fail_all(_as_error(exc))
            self._flush()

    def _flush(self) -> None:
        if not (self._texts or self._ends or self._step_prompt or self._step_generated):
            return
        sched = self.scheduler
        self._prompt_total += self._step_prompt
        self._sampled_total += self._step_generated
        stats = StepStats(
            busy_slots=len(sched.slots) - [s.state for s in sched.slots].count(SlotState.IDLE),
            waiting=len(sched.waiting),
            kv_used=sched.cells_after_plan, prompt_tokens_total=self._prompt_total,
            sampled_total=self._sampled_total,
        )
        texts, ends, self._texts, self._ends = self._texts, self._ends, [], []
        self._step_prompt = self._step_generated = 0
        self._emit(StepEvents(texts, ends, stats))

    def _send(self, job: Job, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._push_text(job.rid, event.text, event.logprobs, event.n_tokens)
        else:
            self._ends.append((job.rid, event))

    def _push_text(self, rid: int, text: str, logprobs: tuple = (), n_tokens: int = 1) -> None:
        # The common case travels as (rid, text): one token, no logprobs (StepEvents.events).
        self._texts.append((rid, text) if n_tokens == 1 and not logprobs else (rid, text, logprobs, n_tokens))

    def _send_text(self, job: Job, text: str) -> None:
        """Text and the log-probabilities of the tokens it came from."""
        assert job.assembler is not None
        if not job.assembler.released:
            # The common case (no logprobs), once per token: the wire's (rid, text) directly.
            if text:
                self._push_text(job.rid, text, (), job.n_unsent)
                job.n_unsent = 0
            return
        items = job.assembler.take_released()
        if text or items:
            self._send(job, TextDelta(text, tuple(items), job.n_unsent))  # type: ignore[arg-type]
            job.n_unsent = 0

    def _handle(self, cmd: Command) -> None:
        if isinstance(cmd, Submit):
            self._enqueue(cmd.rid, cmd.request)
        elif isinstance(cmd, Cancel):
            self._cancel(cmd.rid)
        elif isinstance(cmd, Call):
            try:
                value = self._answer(cmd.query)
            except Exception as exc:  # noqa: BLE001 - the caller gets the failure
                self._emit(CallDone(cmd.cid, error=_as_error(exc)))
            else:
                self._emit(CallDone(cmd.cid, value=value))

    def _answer(self, query) -> object:
        rt = self.rt
        if isinstance(query, Tokenize):
            return rt.tokenize(query.text, add_special=query.add_special, parse_special=query.parse_special)
        if isinstance(query, Detokenize):
            return rt.detokenize(query.tokens)
        if isinstance(query, Embed):
            return self._embed(list(query.texts))
        if isinstance(query, Stats):
            return self.scheduler.stats()
        raise EngineFailed(f"unknown query {type(query).__name__}")

    # -- requests ----------------------------------------------------------------------
    def _enqueue(self, rid: int, req: GenerateRequest) -> None:
        job = Job(rid=rid, prompt=[], params=req.params)
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
        except Exception as exc:  # noqa: BLE001 - a bad request fails alone
            self._send(job, Failed(_as_error(exc)))
            return
        job.prompt = tokens
        job.visible = self.rt.special_ids(req.params.visible_specials)
        self.jobs[rid] = job
        self.scheduler.add(job)

    def _cancel(self, rid: int) -> None:
        job = self.jobs.get(rid)
        if job is None:
            return
        if self.scheduler.remove_waiting(job):
            self._end(job, "cancelled")
            return
        slot = self.scheduler.slot_of(job)
        if slot is not None:
            self._finish(slot, "cancelled")

    def _end(self, job: Job, reason: str) -> None:
        """The job's last event: Finished with its usage."""
        self.jobs.pop(job.rid, None)
        if job.sampler is not None:
            job.sampler.close()
            job.sampler = None
        self._send(job, Finished(reason, Usage(len(job.prompt), job.n_generated, job.n_cached)))  # type: ignore[arg-type]

    def _finish(self, slot: Slot, reason: str, *, keep_cache: bool = True) -> None:
        job = slot.job
        if job is None:
            return
        if reason != "cancelled" and job.assembler is not None and job.assembler.stopped is None:
            self._send_text(job, job.assembler.finish())
        self._execute(self.scheduler.release(slot, keep_cache=keep_cache))
        self._end(job, reason)

    def _fail(self, slot: Slot, exc: LlamaslotsError) -> None:
        """The slot's request fails; its cells are in an unknown state and go."""
        job = slot.job
        self.rt.seq_rm(slot.seq_id)
        if job is None:
            return
        self._execute(self.scheduler.release(slot, keep_cache=False))
        self.jobs.pop(job.rid, None)
        if job.sampler is not None:
            job.sampler.close()
            job.sampler = None
        self._send(job, Failed(exc))

    def _fail_all(self, exc: LlamaslotsError) -> None:
        for slot in self.scheduler.slots:
            if slot.job is not None:
                try:
                    self._fail(slot, exc)
                except Exception:  # noqa: BLE001 - keep failing the others
                    log.exception("%s: failing slot %d", self.name, slot.seq_id)
            slot.clear()
        try:
            for slot in self.scheduler.slots:
                self.rt.seq_rm(slot.seq_id)
        except Exception:  # noqa: BLE001 - the failures above are what matters
            log.exception("%s: clearing the KV cache", self.name)

    # -- one step ------------------------------------------------------------------------
    def _step(self) -> None:
        sched = self.scheduler
        if not sched.has_work:
            return
        out = sched.schedule(time.monotonic())
        if self._execute(out.ops):
            out.batch = sched.plan()
        entries = out.batch
        if not entries:
            if any(s.state is SlotState.PROMPT for s in sched.slots):
                # Prompts wait and nothing can be decoded: only caches are in the way.
                self._execute(sched.on_no_room())
            return
        self.batch.clear()
        for e in entries:
            try:
                self._add_entry(e)
            except LlamaslotsError as exc:
                self._fail_entries(entries, exc)
                return
        rc = self.rt.decode(self.batch)
        if rc != 0:
            self._on_decode_error(rc, entries)
            return
        self._step_prompt += sched.update_from_output(entries)
        self._sample([e for e in entries if e.output and e.slot.job is not None])

    def _execute(self, ops: list[Op]) -> bool:
        """Carry out the scheduler's decisions in order; True when a KV operation failed (the
        batch must then be planned again)."""
        failed = False
        rt, sched = self.rt, self.scheduler
        for op in ops:
            if isinstance(op, EndWaiting):
                self._end(op.job, op.reason)
            elif isinstance(op, DropCache):
                rt.seq_rm(op.slot.seq_id)
            elif isinstance(op, Offload):
                slot = op.slot
                buf = rt.state_save(slot.seq_id, sched.cache_ram_bytes)
                if buf is not None:
                    slot.saved_state, slot.saved_bytes = buf, len(buf)
                else:
                    slot.drop_saved()
                rt.seq_rm(slot.seq_id)
            elif isinstance(op, DiscardSaved):
                op.slot.saved_state, op.slot.saved_bytes = None, 0
            elif isinstance(op, Restore):
                slot = op.slot
                state, slot.saved_state, slot.saved_bytes = slot.saved_state, None, 0
                if state is None or not rt.state_restore(slot.seq_id, state, op.n_tokens):
                    rt.seq_rm(slot.seq_id)
                    sched.op_failed(op)
                    failed = True
            elif isinstance(op, Admit):
                failed |= self._admit(op)
            elif isinstance(op, Fork):
                if not rt.seq_share(op.src.seq_id, op.slot.seq_id, op.n):
                    rt.seq_rm(op.slot.seq_id)
                    sched.op_failed(op)
                    failed = True
            elif isinstance(op, Preempt):
                log.info("%s: KV cache full; finishing the longest generation (slot %d) with length",
                         self.name, op.slot.seq_id)
                self.rt.seq_rm(op.slot.seq_id)
                job = op.job
                if job.assembler is not None and job.assembler.stopped is None:
                    self._send_text(job, job.assembler.finish())
                self._end(job, "length")
        return failed

    def _admit(self, op: Admit) -> bool:
        rt, slot, job = self.rt, op.slot, op.job
        failed = False
        if slot.state is SlotState.WAITING_PREFIX or job.n_cached == 0:
            rt.seq_rm(slot.seq_id)
        elif op.share_from is not None:
            if not rt.seq_share(op.share_from.seq_id, slot.seq_id, job.n_cached):
                failed = True
        elif not (rt.seq_rm(slot.seq_id, job.n_cached, -1) and rt.continues_at(slot.seq_id, job.n_cached)):
            failed = True
        if failed:
            rt.seq_rm(slot.seq_id)
            self.scheduler.op_failed(op)
        try:
            job.sampler = SamplerChain(job.params.sampling, vocab=rt.vocab, n_vocab=rt.n_vocab,
                                       eog_tokens=rt.eog_tokens)
            p = job.params.sampling
            if p.repeat_last_n != 0:
                window = job.prompt if p.repeat_last_n < 0 else job.prompt[-p.repeat_last_n:]
                job.sampler.prime(window)
            job.assembler = TextAssembler(job.params.stop)
        except Exception as exc:  # noqa: BLE001 - a request llama.cpp refuses fails alone
            self._fail(slot, _as_error(exc))
        return failed

    def _add_entry(self, e: BatchEntry) -> None:
        s = e.slot
        if e.pos0 != len(s.cache):
            raise EngineFailed(f"slot {s.seq_id}: position {e.pos0} does not follow its cache ({len(s.cache)})")
        if e.pos0 + len(e.tokens) > self.rt.n_ctx_seq:
            raise EngineFailed(f"slot {s.seq_id}: positions past the context ({self.rt.n_ctx_seq})")
        row = self.batch.add(e.tokens, e.pos0, s.seq_id, e.output)
        if s.job is not None:
            s.job.i_batch = row if e.output else -1

    def _fail_entries(self, entries: list[BatchEntry], exc: LlamaslotsError) -> None:
        for slot in {id(e.slot): e.slot for e in entries}.values():
            self._fail(slot, exc)

    def _on_decode_error(self, rc: int, entries: list[BatchEntry]) -> None:
        if rc == 1:
            # No KV room although our count said there was (fragmentation, a sliding-window
            # cache): free idle caches or end the longest generation; the plan is rebuilt
            # next step.
            ops = self.scheduler.on_no_room()
            if ops:
                self._execute(ops)
                return
            self._fail_entries(entries, EngineFailed("no room in the KV cache for this prompt"))
            return
        self._fail_entries(entries, EngineFailed(f"llama_decode failed (code {rc})"))

    # -- sampling --------------------------------------------------------------------------
    def _sample(self, entries: list[BatchEntry]) -> None:
        rt = self.rt
        ready: list[tuple[Slot, Job]] = []
        for e in entries:
            job = e.slot.job
            if job is None:
                continue
            # Sampling a row without logits is a GGML_ASSERT abort in llama.cpp: check first.
            if not self.batch.is_output(job.i_batch) or job.sampler is None:
                self._fail(e.slot, EngineFailed(f"slot {e.slot.seq_id}: no logits at batch row {job.i_batch}"))
                continue
            ready.append((e.slot, job))
        if not ready:
            return
        tokens: dict[int, int] = {}
        greedy = [job for _, job in ready if job.sampler.numpy_greedy]
        if greedy:
            # Greedy rows from the step's logits: one argmax for all unbiased rows, a biased copy
            # of the row for the others (ignore_eos, logit_bias).
            out_ord = self.batch.out_ord
            logits = rt.logits(self.batch.n_outputs)
            plain = [job for job in greedy if not len(job.sampler.bias_tokens)]
            if len(plain) == 1:
                tokens[id(plain[0])] = int(logits[out_ord[plain[0].i_batch]].argmax())
            elif plain:
                picks = np.argmax(logits[[int(out_ord[job.i_batch]) for job in plain]], axis=1)
                tokens.update((id(job), int(tok)) for job, tok in zip(plain, picks))
            for job in greedy:
                sampler = job.sampler
                if len(sampler.bias_tokens):
                    row = logits[out_ord[job.i_batch]]
                    best = int(row.argmax())
                    if sampler.only_lowering and best not in sampler.biased:
                        # Lowering other tokens (ignore_eos' -inf) cannot change this maximum.
                        tokens[id(job)] = best
                        continue
                    row = row.copy()
                    row[sampler.bias_tokens] += sampler.bias_values
                    tokens[id(job)] = int(np.argmax(row))
        for slot, job in ready:
            tok = tokens.get(id(job))
            if tok is None:
                tok = job.sampler.sample(rt.ctx, job.i_batch)
            tokens[id(job)] = tok
        wanting = [job for _, job in ready if job.params.logprobs is not None]
        logprobs = self._logprobs(wanting, tokens) if wanting else {}
        for slot, job in ready:
            tok = tokens[id(job)]
            job.i_batch = -1
            self._accept(slot, job, tok, logprobs.get(id(job)))

    def _logprobs(self, jobs: list[Job], tokens: dict[int, int]) -> dict[int, TokenLogprob]:
        """Log-softmax of the raw logits of these jobs' rows, computed for all rows together:
        the sampled token's and the top alternatives' (as OpenAI and llama-server report them)."""
        rt = self.rt
        logits = rt.logits(self.batch.n_outputs)
        rows = logits[[int(self.batch.out_ord[job.i_batch]) for job in jobs]].astype(np.float64)
        peak = rows.max(axis=1, keepdims=True)
        lse = np.log(np.exp(rows - peak).sum(axis=1, keepdims=True)) + peak
        logp = rows - lse
        out: dict[int, TokenLogprob] = {}
        for k, job in enumerate(jobs):
            tok = tokens[id(job)]
            n = min(int(job.params.logprobs or 0), rt.n_vocab)
            top: tuple[tuple[str, bytes, float], ...] = ()
            if n:
                idx = np.argpartition(-logp[k], n - 1)[:n]
                idx = idx[np.argsort(-logp[k][idx], kind="stable")]
                top = tuple((rt.piece(int(t)).decode("utf-8", "replace"), rt.piece(int(t)), float(logp[k][t]))
                            for t in idx)
            piece = rt.piece(tok, special=tok in job.visible)
            out[id(job)] = TokenLogprob(piece.decode("utf-8", "replace"), piece, float(logp[k][tok]), top)
        return out

    def _accept(self, slot: Slot, job: Job, tok: int, logprob: TokenLogprob | None = None) -> None:
        """What a sampled token does: end the answer, or become text and the next input."""
        self._step_generated += 1
        if self.rt.is_eog(tok):
            self._finish(slot, "stop")
            return
        job.n_generated += 1
        job.n_unsent += 1
        assert job.assembler is not None
        text = job.assembler.feed(self.rt.piece(tok, special=tok in job.visible), logprob)
        if text or job.assembler.released:
            self._send_text(job, text)
        if job.assembler.stopped is not None:
            self._finish(slot, "stop")
            return
        mt = job.params.max_tokens
        # prompt + completion never exceeds the per-request context (the last sampled
        # token would be fed at position len(cache), which must stay inside it).
        if (mt is not None and job.n_generated >= mt) or len(slot.cache) + 1 >= self.rt.n_ctx_seq:
            self._finish(slot, "length")
            return
        job.pending_token = tok

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
            group: list[tuple[int, list[int]]] = []  # (seq id, tokens)
            n_tokens = 0
            for tokens in inputs[len(out):]:
                if len(group) == len(self.embed_seqs) or n_tokens + len(tokens) > rt.n_batch:
                    break
                group.append((self.embed_seqs[len(group)], tokens))
                n_tokens += len(tokens)
            out.extend(self._embed_group(group, n_tokens))
        return out

    def _embed_group(self, group: list[tuple[int, list[int]]], n_tokens: int) -> list[list[float]]:
        rt, sched = self.rt, self.scheduler
        if sched.budget.unified:
            short = n_tokens - sched.budget.free(sched.slots)
            if short > 0:
                ops: list[Op] = []
                freed = sched._reclaim_idle(ops, short, keep=set())
                self._execute(ops)
                if freed < short:
                    raise ServerBusy("the KV cache is full with running generations; retry the embeddings request")
        self.batch.clear()
        rows: list[list[int]] = []
        for seq, tokens in group:
            rt.seq_rm(seq)
            last = self.batch.n
            self.batch.add(tokens, 0, seq, True)
            self.batch.logits[last:self.batch.n] = 1
            rows.append(list(range(last, self.batch.n)))
        lc.llama_set_embeddings(rt.ctx, True)
        try:
            rc = rt.decode(self.batch)
            if rc != 0:
                raise EngineFailed(f"llama_decode failed for embeddings (code {rc})")
            return [self._pooled(r, seq) for (seq, _), r in zip(group, rows)]
        finally:
            lc.llama_set_embeddings(rt.ctx, False)
            for seq, _ in group:
                rt.seq_rm(seq)

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
        for job in list(self.scheduler.waiting):
            self._end(job, "cancelled")
        self.scheduler.waiting.clear()
        for slot in self.scheduler.slots:
            if slot.job is not None:
                self._finish(slot, "cancelled")
        self._flush()
        self.batch.free()
        self.rt.close()
        self._emit(Stopped())
