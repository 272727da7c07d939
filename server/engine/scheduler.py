"""Which slot takes a request, and what goes into the next batch (no llama.cpp calls here)."""
from __future__ import annotations

from dataclasses import dataclass

from server.engine.slot import Slot, SlotState, common_prefix_len


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
    one pool of n_ctx cells; with a split cache each sequence has n_ctx_seq of its own."""

    n_ctx: int
    n_ctx_seq: int
    unified: bool

    def used(self, slots: list[Slot]) -> int:
        return sum(len(s.cache) for s in slots)

    def free(self, slots: list[Slot]) -> int:
        if not self.unified:
            return 1 << 30
        return self.n_ctx - self.used(slots)


class Scheduler:
    def __init__(self, n_batch: int, budget: KvBudget, similarity: float = 0.10):
        self.n_batch = n_batch
        self.budget = budget
        # llama-server's --slot-prompt-similarity: below it, reuse is not worth a slot switch.
        self.similarity = similarity

    def pick_slot(self, slots: list[Slot], prompt: list[int]) -> tuple[Slot, int] | None:
        """An idle slot for this prompt and how many of its cached tokens to keep.

        Highest shared-prefix ratio first (llama-server's slot selection), else the least
        recently used idle slot. At least one prompt token is always decoded, since the
        first sampled token needs its logits.
        """
        idle = [s for s in slots if s.state is SlotState.IDLE]
        if not idle:
            return None
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
        return best, min(best_lcp, len(prompt) - 1)

    def admission_room(self, slots: list[Slot], chosen: Slot, n_keep: int, n_prompt: int) -> int:
        """Cells still missing for this prompt if admitted now (<= 0: it fits), counting the
        prompts already admitted as reserved and idle caches as reclaimable."""
        if not self.budget.unified:
            return 0
        reserved = sum(s.remaining_prompt() for s in slots if s.state is SlotState.PROMPT)
        held = sum(len(s.cache) for s in slots if s.busy) + n_keep
        return held + reserved + (n_prompt - n_keep) - self.budget.n_ctx

    def plan(self, slots: list[Slot]) -> list[BatchEntry]:
        """One token for every generating slot, then prompt chunks, fairly shared."""
        entries: list[BatchEntry] = []
        for s in slots:
            if s.state is SlotState.GENERATING and s.pending_token is not None:
                entries.append(BatchEntry(s, [s.pending_token], len(s.cache), True))
        room = min(self.n_batch - len(entries), self.budget.free(slots) - len(entries))
        prompting = [s for s in slots if s.state is SlotState.PROMPT and s.remaining_prompt() > 0]
        # Water-filling: short prompts finish this step, what they leave goes to long ones,
        # so one long prompt neither starves the others nor stalls the decoding slots.
        prompting.sort(key=lambda s: (s.remaining_prompt(), s.job.arrived))
        for i, s in enumerate(prompting):
            if room <= 0:
                break
            share = max(1, room // (len(prompting) - i))
            take = min(s.remaining_prompt(), share, room)
            start = s.n_prompt_fed
            chunk = s.job.prompt[start : start + take]
            entries.append(BatchEntry(s, chunk, len(s.cache), start + take == len(s.job.prompt)))
            room -= take
        return entries
