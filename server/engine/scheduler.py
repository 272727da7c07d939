"""The scheduler decides (admit, keep or share a prefix, drop or offload caches, end a generation for room, batch);
the engine carries the decisions out. No llama.cpp here, so every policy is testable on its own.

One step: the engine applies cancellations, calls `schedule()`, executes its ops in order
(reporting a KV operation that failed with `op_failed`, then re-planning the batch with
`plan()`), decodes the batch, tells `update_from_output` what was decoded, samples, and ends
requests with `release`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Union

from server.engine.slot import Job, Slot, SlotState, common_prefix_len, used_cells

_IDLE = SlotState.IDLE
# Host-memory prompts kept beyond the slots' own: each admission compares its prompt with all.
MAX_CACHED_PROMPTS = 256
_PROMPT = SlotState.PROMPT
_GENERATING = SlotState.GENERATING


@dataclass
class BatchEntry:
    slot: Slot
    tokens: list[int]
    pos0: int
    # The last token of this entry needs logits (it ends a prompt or is a decode token).
    output: bool


@dataclass
class KvBudget:
    """KV cells as the scheduler counts them. With a unified cache every sequence draws on
    one pool of n_ctx cells (shared cells once); with a split cache each sequence has
    n_ctx_seq of its own."""

    n_ctx: int
    n_ctx_seq: int
    unified: bool

    def used(self, slots: list[Slot]) -> int:
        return used_cells(slots)

    def free(self, slots: list[Slot]) -> int:
        if not self.unified:
            return 1 << 30
        return self.n_ctx - self.used(slots)


# -- decisions -----------------------------------------------------------------------------


@dataclass(eq=False)
class EndWaiting:
    """A request that needs no slot: it ends now (max_tokens 0)."""

    job: Job
    reason: str


@dataclass(eq=False)
class DropCache:
    """Remove an idle slot's cells (seq_rm(seq, -1, -1))."""

    slot: Slot


@dataclass(eq=False)
class Offload:
    """Move an idle slot's cells to host memory (state save), then remove them."""

    slot: Slot
    tokens: list[int]


@dataclass(eq=False)
class DiscardSaved:
    """Forget an idle slot's host-memory copy (over the cache_ram budget)."""

    slot: Slot


@dataclass(eq=False)
class Restore:
    """Copy an idle slot's host-memory cache (n_tokens long) back into its (empty) sequence."""

    slot: Slot
    n_tokens: int


@dataclass(eq=False)
class Admit:
    """Start `job` in `slot`: keep its first n_keep cells (own cache, shared from `share_from`,
    or restored from the host-memory prompt `restore_from`), or wait for `fork_from` to decode
    the shared prefix first."""

    job: Job
    slot: Slot
    n_keep: int
    share_from: Slot | None = None
    fork_from: Slot | None = None
    restore_from: "CachedPrompt | None" = None


@dataclass(eq=False)
class CachedPrompt:
    """A prompt's cells in host memory that no slot holds any more (llama-server's --cache-ram
    prompt cache): a request that starts with these tokens gets them copied back into a slot."""

    tokens: list[int]
    state: object  # the engine's buffer (llama_state_seq_get_data)
    nbytes: int
    last_used: float


@dataclass(eq=False)
class Fork:
    """A waiting slot takes its prefix from the slot that just decoded it."""

    slot: Slot
    src: Slot
    n: int


@dataclass(eq=False)
class Preempt:
    """End a running generation with `length` to free cells for the others; its cells go."""

    job: Job
    slot: Slot


Op = Union[EndWaiting, DropCache, Offload, DiscardSaved, Restore, Admit, Fork, Preempt]


@dataclass
class SchedulerOutput:
    ops: list[Op] = field(default_factory=list)
    batch: list[BatchEntry] = field(default_factory=list)


class Scheduler:
    """Slots, the waiting queue and the KV budget of one model.

    Policy, in order: requests are admitted first come first served into idle slots, keeping
    the longest prompt prefix already in a cache (own cache, a host-memory copy, another
    slot's cells in a unified cache, or a prefix another slot is about to decode); idle
    caches make room before anyone's work, and only then does the longest-running
    generation end with "length"; a step decodes one token for every generating slot, then
    prompt chunks first come first served (one prompt finishes before the next starts).
    """

    def __init__(
        self, n_slots: int, n_batch: int, budget: KvBudget, *, share: bool = True, offload: bool = True,
        swa: bool = False, similarity: float = 0.10, min_share: int = 16,
    ):
        self.slots = [Slot(seq_id=i) for i in range(n_slots)]
        self.waiting: deque[Job] = deque()
        self.n_batch = n_batch
        self.budget = budget
        # Cells are shared across sequences only in a unified cache (a split cache's
        # streams copy whole, llama.cpp aborts on a partial copy).
        self.share = share and budget.unified
        self.offload = offload and budget.unified
        # A sliding-window model must stop a prompt chunk where a fork will copy it, so the
        # window of the shared prefix is still in the source's cells.
        self.swa = swa
        # llama-server's --slot-prompt-similarity: below it, reuse is not worth a slot switch.
        self.similarity = similarity
        # A shared prefix shorter than this is not worth a copy or a wait.
        self.min_share = min_share
        self.cache_ram_bytes = 0
        # Host-memory copies of prompts whose slot went on to other work, most recent last;
        # with the slots' own copies they share cache_ram_bytes.
        self.prompt_cache: list[CachedPrompt] = []
        # Offloads were issued: their sizes, known once the engine ran them, are checked against
        # cache_ram_bytes at the next step.
        self._trim_due = False
        # Cells held once the last planned batch is decoded (the step's KV counter).
        self.cells_after_plan = 0

    # -- requests ---------------------------------------------------------------------------
    def add(self, job: Job) -> None:
        self.waiting.append(job)

    @property
    def has_work(self) -> bool:
        # Asked twice a step: the state compared inline, not through Slot.busy per slot.
        return bool(self.waiting) or any(s.state is not _IDLE for s in self.slots)

    def slot_of(self, job: Job) -> Slot | None:
        for s in self.slots:
            if s.job is job:
                return s
        return None

    def remove_waiting(self, job: Job) -> bool:
        try:
            self.waiting.remove(job)
            return True
        except ValueError:
            return False

    def release(self, slot: Slot, *, keep_cache: bool = True) -> list[Op]:
        """The slot's request ended: the slot goes idle, its cells stay as a prompt cache
        unless they are in an unknown state or needed elsewhere. Returns what that takes."""
        ops: list[Op] = []
        if slot.state is SlotState.WAITING_PREFIX:
            slot.fork_src, slot.fork_n = None, 0
        slot.job = None
        slot.state = SlotState.IDLE
        if not keep_cache:
            ops += self._resolve_dependents(slot, 0)
            slot.clear()
            ops.append(DropCache(slot))
        return ops

    # -- one step ---------------------------------------------------------------------------
    def schedule(self, now: float) -> SchedulerOutput:
        out = SchedulerOutput()
        if self._trim_due:
            self._trim_due = False
            self._trim_host_memory(out.ops)
        if self.waiting:
            self._admit(out.ops, now)
        # This runs every step: one pass over the slots tells which of the checks below have
        # anything to do, and what the room check needs when nothing changed before it.
        n_gen, prompt_need, idle_cache, forks = self._census()
        if forks:
            self._forks(out.ops)
        if idle_cache:
            self._offload_idle(out.ops)
        census = None if (out.ops or forks) else (n_gen, prompt_need)
        out.batch = self.plan(self._make_room(out.ops, census))
        return out

    def _census(self) -> tuple[int, int, bool, bool]:
        """Generating slots, prompt tokens still to decode, whether an idle slot holds KV cells,
        whether a slot waits for a prefix to fork: one pass over the slots."""
        forks = idle_cache = False
        n_gen = prompt_need = 0
        for s in self.slots:
            state = s.state
            if state is _GENERATING:
                n_gen += 1
            elif state is _IDLE:
                if s.cache:
                    idle_cache = True
            elif state is _PROMPT:
                if s.job is not None:
                    prompt_need += s.job.remaining_prompt()
            else:
                forks = True
        return n_gen, prompt_need, idle_cache, forks

    def _offload_idle(self, ops: list[Op]) -> None:
        """Unified cache: move idle slots' cached prompts to host memory while others run.

        In one shared pool every sequence's attention spans all used cells, so idle caches
        slow every running request (about 15% at 8 requests with 16 idle caches, measured);
        in RAM they cost nothing until a request reuses them (a copy back, no prefill).
        """
        if not (self.offload and self.cache_ram_bytes > 0):
            return
        idle_cached = [s for s in self.slots if s.state is SlotState.IDLE and s.cache]
        if not idle_cached or not any(s.busy for s in self.slots):
            return  # nothing to move, or nothing runs that the caches would slow down
        for s in idle_cached:
            if not self._is_source(s):
                ops.append(Offload(s, list(s.cache)))
                s.saved_tokens = list(s.cache)  # saved_state/bytes arrive from the engine
                s.clear()
                self._trim_due = True

    def _trim_host_memory(self, ops: list[Op]) -> None:
        """Host-memory copies over cache_ram_bytes (or the count limit) go, least recently used first."""
        total = sum(s.saved_bytes for s in self.slots) + sum(c.nbytes for c in self.prompt_cache)
        if total <= self.cache_ram_bytes and len(self.prompt_cache) <= MAX_CACHED_PROMPTS:
            return
        held: list[tuple[float, Slot | CachedPrompt]] = [(s.last_used, s) for s in self.slots if s.saved_tokens]
        held += [(c.last_used, c) for c in self.prompt_cache]
        held.sort(key=lambda item: item[0])
        for _, copy in held:
            if total <= self.cache_ram_bytes and len(self.prompt_cache) <= MAX_CACHED_PROMPTS:
                break
            if isinstance(copy, CachedPrompt):
                total -= copy.nbytes
                self.prompt_cache.remove(copy)
            else:
                total -= copy.saved_bytes
                ops.append(DiscardSaved(copy))
                copy.saved_tokens = []

    def _cache_copy(self, slot: Slot) -> None:
        """The slot's host-memory copy joins the prompt cache (checked against the budget next step)."""
        if slot.saved_tokens and slot.saved_state is not None:
            self.prompt_cache.append(CachedPrompt(list(slot.saved_tokens), slot.saved_state, slot.saved_bytes,
                                                  slot.last_used))
            self._trim_due = True

    def _keep_in_host_memory(self, slot: Slot) -> None:
        """The slot takes other work: its host-memory copy joins the prompt cache instead of going."""
        self._cache_copy(slot)
        slot.drop_saved()

    def _worth_restoring(self, n_keep: int, n_saved: int) -> bool:
        """Whether copying a host-memory prompt of n_saved tokens back pays for keeping n_keep:
        not for a token or two in common, and for a sliding-window model only whole (llama.cpp
        saves the last window of such a sequence's cells, so it continues at its end only)."""
        return n_keep >= min(self.min_share, n_saved) and not (self.swa and n_keep < n_saved)

    @staticmethod
    def _host_copy(admit: Admit) -> list[int] | None:
        """The host-memory tokens this admission copies back into its slot: a cached prompt's,
        or the slot's own offloaded ones (None: its cells are in the KV cache or come from
        another slot)."""
        if admit.restore_from is not None:
            return admit.restore_from.tokens
        slot = admit.slot
        if admit.share_from is None and admit.fork_from is None and slot.saved_tokens and not slot.cache:
            return slot.saved_tokens
        return None

    # -- admission --------------------------------------------------------------------------
    def _admit(self, ops: list[Op], now: float) -> None:
        while self.waiting:
            job = self.waiting[0]
            if job.params.max_tokens == 0:
                self.waiting.popleft()
                ops.append(EndWaiting(job, "length"))
                continue
            pick = self._pick(job)
            if pick is None:
                return
            copy = self._host_copy(pick)
            if copy is not None and not self._worth_restoring(pick.n_keep, len(copy)):
                pick.n_keep = 0
            admit = pick
            missing = self._admission_shortfall(admit)
            if missing > 0:
                self._reclaim_idle(ops, missing, keep={admit.slot, admit.share_from, admit.fork_from})
                if self._admission_shortfall(admit) > 0:
                    if any(s.busy for s in self.slots):
                        return  # wait for running requests to free cells
                    # Nothing runs and it still does not fit: only the cache is in the way.
                    admit = Admit(job, admit.slot, 0)
                    self._reclaim_idle(ops, 1 << 30, keep={admit.slot})
            self.waiting.popleft()
            self._apply_admit(ops, admit, now)

    def _pick(self, job: Job) -> Admit | None:
        """Where `job` runs and what it reuses (None: no idle slot)."""
        idle = [s for s in self.slots if s.state is SlotState.IDLE]
        if not idle:
            return None
        prompt = job.prompt
        cap = len(prompt) - 1  # at least one prompt token is decoded: the first sample needs logits
        own_slot, own = self._pick_own(idle, prompt)
        own = min(own, cap)
        best: Admit = Admit(job, own_slot, own)
        if not self.share:
            return best
        best_len = own
        for t in self.slots:
            if t is own_slot and t.state is SlotState.IDLE:
                continue
            shared = min(common_prefix_len(t.cache, prompt), cap)
            if shared >= self.min_share and shared > best_len:
                best, best_len = Admit(job, own_slot, shared, share_from=t), shared
            if t.state is SlotState.PROMPT and t.job is not None and len(t.cache) < len(t.job.prompt):
                ahead = min(common_prefix_len(t.job.prompt, prompt), cap)
                if ahead > len(t.cache) and ahead >= self.min_share and ahead > best_len:
                    best, best_len = Admit(job, own_slot, ahead, fork_from=t), ahead
        restore = self._pick_cached(job, idle, cap, best_len)
        if restore is not None:
            return restore
        if best.share_from is not None or best.fork_from is not None:
            # The prefix comes from elsewhere: take a slot whose own cache matters least (not
            # the source itself, whose cells are the point).
            others = [s for s in idle if s is not best.share_from] or idle
            best.slot = min(others, key=lambda s: (len(s.known_tokens) > 0, s.last_used))
            if best.slot is best.share_from:
                best = Admit(job, best.slot, best_len)  # its own cells: plain reuse
        return best

    def _pick_cached(self, job: Job, idle: list[Slot], cap: int, best_len: int) -> Admit | None:
        """A host-memory prompt that covers more of this prompt than any slot offers, restored
        into an idle slot with no cells in the KV cache (the one whose own copy matters least)."""
        if not self.prompt_cache:
            return None
        prompt = job.prompt
        empty = [s for s in idle if not s.cache]
        if not empty:
            return None
        found, found_len = None, max(best_len, self.min_share - 1)
        for c in self.prompt_cache:
            n = min(common_prefix_len(c.tokens, prompt), cap)
            if n > found_len and self._worth_restoring(n, len(c.tokens)):
                found, found_len = c, n
        if found is None or found_len / max(1, len(prompt)) < self.similarity:
            return None
        slot = min(empty, key=lambda s: (len(s.saved_tokens) > 0, s.last_used))
        return Admit(job, slot, found_len, restore_from=found)

    def _pick_own(self, idle: list[Slot], prompt: list[int]) -> tuple[Slot, int]:
        """The idle slot whose cached prefix fits best (llama-server's slot selection), else
        the least recently used empty one."""
        best, best_lcp = None, 0
        for s in idle:
            lcp = common_prefix_len(s.known_tokens, prompt)
            if lcp > best_lcp:
                best, best_lcp = s, lcp
        empty = [s for s in idle if not s.known_tokens]
        if best is None or best_lcp / max(1, len(prompt)) < self.similarity:
            best = min(idle, key=lambda s: (len(s.known_tokens) > 0, s.last_used))
            best_lcp = common_prefix_len(best.known_tokens, prompt)
        elif best_lcp < len(best.known_tokens) / 2 and empty:
            # Reusing would throw away most of that cache (e.g. only a BOS in common): an
            # empty slot costs the same prefill and keeps the cache for its owner.
            best, best_lcp = empty[0], 0
        return best, best_lcp

    def _admission_shortfall(self, admit: Admit) -> int:
        """Cells still missing to admit this (<= 0: it fits), counting prompts already admitted
        as reserved and idle caches as reclaimable, except those the admission keeps."""
        if not self.budget.unified:
            return 0
        reserved = sum(s.job.remaining_prompt() for s in self.slots
                       if s.job is not None and s.state in (SlotState.PROMPT, SlotState.WAITING_PREFIX))
        kept = [s for s in (admit.slot, admit.share_from) if s is not None and s.cache and not s.busy]
        held = used_cells([s for s in self.slots if s.busy] + kept)
        new_cells = len(admit.job.prompt) - admit.n_keep
        copy = self._host_copy(admit)
        if copy is not None and admit.n_keep > 0:
            # Kept cells copied back from host memory are new cells too (the whole copy, until
            # the admission trims it to n_keep).
            new_cells = max(len(copy), len(admit.job.prompt))
        return held + reserved + new_cells - self.budget.n_ctx

    def _apply_admit(self, ops: list[Op], admit: Admit, now: float) -> None:
        slot, job = admit.slot, admit.job
        ops += self._resolve_dependents(slot, 0)
        restoring = self._host_copy(admit) is not None
        cached = admit.restore_from
        if cached is not None:
            # The slot's own copy (if any) joins the cache; the chosen one takes its place.
            self._keep_in_host_memory(slot)
            self.prompt_cache.remove(cached)
            slot.saved_tokens, slot.saved_state, slot.saved_bytes = cached.tokens, cached.state, cached.nbytes
        if restoring:
            if admit.n_keep > 0:
                if admit.n_keep < len(slot.saved_tokens):
                    self._cache_copy(slot)  # only its start is reused: kept for a prompt that wants the rest
                ops.append(Restore(slot, len(slot.saved_tokens)))
                slot.clear()
                slot.extend(slot.saved_tokens)
                slot.saved_tokens = []
            else:
                self._keep_in_host_memory(slot)
        elif slot.saved_tokens:
            self._keep_in_host_memory(slot)
        slot.job = job
        slot.last_used = now
        job.n_generated = 0
        job.pending_token = None
        if admit.fork_from is not None:
            slot.clear()
            slot.state = SlotState.WAITING_PREFIX
            slot.fork_src, slot.fork_n = admit.fork_from, admit.n_keep
            job.n_fed = job.n_cached = 0
        else:
            if admit.share_from is not None:
                slot.share_from(admit.share_from, admit.n_keep)
            else:
                slot.truncate(admit.n_keep)
            slot.state = SlotState.PROMPT
            job.n_fed = job.n_cached = admit.n_keep
        ops.append(admit)

    def op_failed(self, op: Op) -> None:
        """A KV operation the engine could not carry out: the slot starts from an empty
        sequence (the engine has removed its cells)."""
        if isinstance(op, (Admit, Fork, Restore)):
            slot = op.slot
            slot.clear()
            job = slot.job
            if job is not None and slot.state is not SlotState.WAITING_PREFIX:
                job.n_fed = job.n_cached = 0
            if isinstance(op, Fork) and job is not None:
                slot.state = SlotState.PROMPT
                slot.fork_src, slot.fork_n = None, 0
                job.n_fed = job.n_cached = 0

    # -- forks ------------------------------------------------------------------------------
    def _is_source(self, slot: Slot) -> bool:
        return any(s.fork_src is slot for s in self.slots if s.state is SlotState.WAITING_PREFIX)

    def _forks(self, ops: list[Op]) -> None:
        """Waiting slots whose source has decoded their prefix take it now."""
        if not self.share:
            return
        for s in self.slots:
            if s.state is not SlotState.WAITING_PREFIX or s.fork_src is None:
                continue
            src = s.fork_src
            if s.job is not None and len(src.cache) >= s.fork_n and src.cache[: s.fork_n] == s.job.prompt[: s.fork_n]:
                ops.append(self._fork(s))
            elif src.state is not SlotState.PROMPT or src.job is None:
                self._unfork(s)  # the source stopped before the prefix: prefill it alone

    def _fork(self, s: Slot) -> Fork:
        src, n = s.fork_src, s.fork_n
        assert src is not None and s.job is not None
        s.share_from(src, n)
        s.state = SlotState.PROMPT
        s.job.n_fed = s.job.n_cached = n
        s.fork_src, s.fork_n = None, 0
        return Fork(s, src, n)

    def _unfork(self, s: Slot) -> None:
        s.state = SlotState.PROMPT
        s.fork_src, s.fork_n = None, 0
        if s.job is not None:
            s.job.n_fed = s.job.n_cached = 0

    def _resolve_dependents(self, src: Slot, keep: int) -> list[Op]:
        """src's cache is about to shrink to `keep` tokens: slots waiting on a longer prefix
        fork now if it is there, else prefill on their own."""
        ops: list[Op] = []
        for s in self.slots:
            if s.state is SlotState.WAITING_PREFIX and s.fork_src is src and s.fork_n > keep and s.job is not None:
                if len(src.cache) >= s.fork_n and src.cache[: s.fork_n] == s.job.prompt[: s.fork_n]:
                    ops.append(self._fork(s))
                else:
                    self._unfork(s)
        return ops

    # -- room -------------------------------------------------------------------------------
    def _reclaim_idle(self, ops: list[Op], cells: int, keep: set) -> int:
        """Drop idle slots' cached prompts, least recently used first."""
        freed = 0
        for s in sorted(self.slots, key=lambda s: s.last_used):
            if freed >= cells:
                break
            if s.state is SlotState.IDLE and s.cache and s not in keep and not self._is_source(s):
                before = used_cells(self.slots)
                ops += self._resolve_dependents(s, 0)
                s.clear()
                ops.append(DropCache(s))
                freed += before - used_cells(self.slots)
        return freed

    def _victim(self) -> Slot | None:
        """The generation that gives way when the cache is full: the longest-running one."""
        gen = [s for s in self.slots if s.state is SlotState.GENERATING and s.job is not None]
        return max(gen, key=lambda s: len(s.cache)) if gen else None

    def _preempt(self, ops: list[Op], victim: Slot) -> None:
        job = victim.job
        assert job is not None
        ops += self._resolve_dependents(victim, 0)
        victim.job = None
        victim.state = SlotState.IDLE
        # Its cells are what the others need: they do not stay as a prompt cache.
        victim.clear()
        ops.append(Preempt(job, victim))

    def _make_room(self, ops: list[Op], census: tuple[int, int] | None = None) -> int | None:
        """Unified cache: cells for this step, taken from idle caches before anyone's work.
        `census` is (generating slots, prompt tokens still to decode) when the caller counted
        them already. Returns the cells in use when it changed nothing (the plan needs them)."""
        if not self.budget.unified:
            return None
        n_gen, prompt_need = census if census is not None else self._census()[:2]
        want = n_gen + min(prompt_need, max(0, self.n_batch - n_gen))
        used = used_cells(self.slots)
        free = self.budget.n_ctx - used
        if want <= free:
            return used  # the common case: room for the whole step
        short = want - free
        if short > 0:
            self._reclaim_idle(ops, short, keep=set())
        while True:
            gen = [s for s in self.slots if s.state is SlotState.GENERATING]
            if not gen or len(gen) <= self.budget.free(self.slots):
                return None
            victim = self._victim()
            assert victim is not None
            self._preempt(ops, victim)

    def on_no_room(self) -> list[Op]:
        """llama_decode found no KV room although the count said there was (fragmentation):
        free idle caches; if there are none, the longest generation gives way."""
        ops: list[Op] = []
        if self._reclaim_idle(ops, 1 << 30, keep=set()) > 0:
            return ops
        victim = self._victim()
        if victim is not None:
            self._preempt(ops, victim)
        return ops

    # -- the batch --------------------------------------------------------------------------
    def plan(self, used: int | None = None) -> list[BatchEntry]:
        """One token for every generating slot, then prompt chunks first come first served, so
        the earliest prompt reaches its first token soonest; each prompt is chunked to the
        batch, so running streams wait at most one step for it. `used`: the cells in use, when
        the caller knows them."""
        entries: list[BatchEntry] = []
        prompting: list[Slot] = []
        for s in self.slots:
            state, job = s.state, s.job
            if job is None:
                continue
            if state is _GENERATING:
                if job.pending_token is not None:
                    entries.append(BatchEntry(s, [job.pending_token], len(s.cache), True))
            elif state is _PROMPT and job.n_fed < len(job.prompt):
                prompting.append(s)
        if used is None:
            used = used_cells(self.slots)
        free = self.budget.n_ctx - used if self.budget.unified else 1 << 30
        room = min(self.n_batch - len(entries), free - len(entries))
        if len(prompting) > 1:
            prompting.sort(key=lambda s: s.job.arrived)  # type: ignore[union-attr]
        for s in prompting:
            if room <= 0:
                break
            job = s.job
            assert job is not None
            start = job.n_fed
            take = min(job.remaining_prompt(), room)
            if self.swa:
                # Stop at a fork point so the forked slots copy a complete sliding window.
                cuts = [d.fork_n for d in self.slots
                        if d.state is SlotState.WAITING_PREFIX and d.fork_src is s and start < d.fork_n < start + take]
                if cuts:
                    take = min(cuts) - start
            chunk = job.prompt[start: start + take]
            entries.append(BatchEntry(s, chunk, len(s.cache), start + take == len(job.prompt)))
            room -= take
        self.cells_after_plan = used + sum(len(e.tokens) for e in entries)
        return entries

    def update_from_output(self, entries: list[BatchEntry]) -> int:
        """The batch was decoded: the cells exist, prompts moved on, finished prompts generate.
        Returns how many prompt tokens the batch decoded."""
        n_prompt = 0
        for e in entries:
            s, job = e.slot, e.slot.job
            s.extend(e.tokens)
            if job is None:
                continue
            if s.state is _PROMPT:
                n_prompt += len(e.tokens)
                job.n_fed += len(e.tokens)
                if e.output:
                    s.state = _GENERATING
            else:
                job.pending_token = None
        return n_prompt

    def stats(self) -> dict:
        return {
            "slots": [
                {"id": s.seq_id, "state": s.state.value, "n_cached": len(s.cache),
                 "n_saved": len(s.saved_tokens), "n_generated": s.job.n_generated if s.job else 0,
                 "rid": s.job.rid if s.job else None,
                 "n_prompt": len(s.job.prompt) if s.job else 0,
                 "n_cached_prompt": s.job.n_cached if s.job else 0}
                for s in self.slots
            ],
            "waiting": len(self.waiting),
            "kv_used": used_cells(self.slots),
            "kv_size": self.budget.n_ctx,
            "cached_prompts": len(self.prompt_cache),
        }
