"""Slot choice by shared prefix and the fair, bounded batch plan (pure Python)."""
from compat.params import GenerationParams
from server.engine.scheduler import KvBudget, Scheduler
from server.engine.slot import Job, Slot, SlotState


def job(prompt, rid=1):
    return Job(rid=rid, prompt=list(prompt), params=GenerationParams(), sink=lambda e: None)


def test_pick_prefers_longest_shared_prefix_then_lru():
    slots = [Slot(0, cache=[1, 2, 3]), Slot(1, cache=[1, 2, 3, 4, 5]), Slot(2)]
    sch = Scheduler(512, KvBudget(1024, 1024, True))
    slot, keep = sch.pick_slot(slots, [1, 2, 3, 4, 5, 6])
    assert slot.seq_id == 1 and keep == 5
    # The whole prompt cached: one token is still decoded for its logits.
    slot, keep = sch.pick_slot(slots, [1, 2, 3, 4, 5])
    assert slot.seq_id == 1 and keep == 4
    # No useful prefix: an empty idle slot first.
    slot, keep = sch.pick_slot(slots, [9, 9])
    assert slot.seq_id == 2 and keep == 0


def test_plan_puts_decode_tokens_first_and_shares_prefill():
    sch = Scheduler(8, KvBudget(1024, 1024, True))
    gen = Slot(0, state=SlotState.GENERATING, cache=[1, 2], pending_token=7)
    gen.job = job([1, 2], rid=1)
    long = Slot(1)
    long.assign(job(range(100), rid=2), 0)
    short = Slot(2)
    short.assign(job([5, 6], rid=3), 0)
    entries = sch.plan([gen, long, short])
    assert entries[0].slot is gen and entries[0].tokens == [7] and entries[0].pos0 == 2 and entries[0].output
    sizes = {e.slot.seq_id: len(e.tokens) for e in entries}
    assert sum(sizes.values()) <= 8
    # The short prompt completes (and asks for logits); the long one gets the rest.
    assert sizes[2] == 2 and sizes[1] == 5
    assert [e.output for e in entries if e.slot is short] == [True]
    assert [e.output for e in entries if e.slot is long] == [False]


def test_plan_respects_unified_kv_room():
    sch = Scheduler(512, KvBudget(16, 16, True))
    s = Slot(0)
    s.assign(job(range(40)), 0)
    other = Slot(1, cache=list(range(10)))
    entries = sch.plan([s, other])
    assert sum(len(e.tokens) for e in entries) == 6


def test_admission_counts_reserved_prompts():
    sch = Scheduler(512, KvBudget(100, 100, True))
    a = Slot(0)
    a.assign(job(range(60)), 0)
    b = Slot(1)
    assert sch.admission_room([a, b], b, 0, 50) == 10
    assert sch.admission_room([a, b], b, 0, 40) <= 0


def test_a_barely_similar_prompt_takes_an_empty_slot_not_a_long_cache():
    long_cache = list(range(1, 200))
    slots = [Slot(0, cache=long_cache), Slot(1)]
    sch = Scheduler(512, KvBudget(1024, 1024, True))
    # [1, 500] shares only the first token (a BOS) with slot 0's 199 cached tokens.
    slot, keep = sch.pick_slot(slots, [1, 500])
    assert slot.seq_id == 1 and keep == 0
    # A real continuation still reuses it.
    slot, keep = sch.pick_slot(slots, long_cache + [7])
    assert slot.seq_id == 0 and keep == 199
