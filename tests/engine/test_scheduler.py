"""The scheduler's decisions, without llama.cpp: admission and prefix reuse, sharing and forks, room, the batch."""
from __future__ import annotations

from compat.params import GenerationParams
from server.engine.scheduler import (
    Admit, DiscardSaved, DropCache, EndWaiting, Fork, KvBudget, Offload, Preempt, Restore, Scheduler,
)
from server.engine.slot import Job, Slot, SlotState, used_cells


def job(prompt, rid=1, arrived=0.0, max_tokens=None):
    return Job(rid=rid, prompt=list(prompt), params=GenerationParams(max_tokens=max_tokens), arrived=arrived)


def scheduler(n_slots=3, n_batch=512, n_ctx=1024, unified=True, **kw) -> Scheduler:
    return Scheduler(n_slots, n_batch, KvBudget(n_ctx, n_ctx if unified else n_ctx // n_slots, unified), **kw)


def cached(sch: Scheduler, i: int, tokens, last_used=0.0) -> Slot:
    s = sch.slots[i]
    s.extend(list(tokens))
    s.last_used = last_used
    return s


def ops_of(out, kind):
    return [op for op in out.ops if isinstance(op, kind)]


def decode(sch: Scheduler, out) -> None:
    """What the engine does after a successful decode."""
    sch.update_from_output(out.batch)


# -- own-cache reuse ------------------------------------------------------------------------


def test_admission_prefers_the_longest_cached_prefix():
    sch = scheduler(share=False)
    cached(sch, 0, [1, 2, 3])
    cached(sch, 1, [1, 2, 3, 4, 5])
    sch.add(job([1, 2, 3, 4, 5, 6]))
    (admit,) = ops_of(sch.schedule(1.0), Admit)
    assert admit.slot.seq_id == 1 and admit.n_keep == 5 and admit.share_from is None


def test_the_whole_prompt_cached_still_decodes_its_last_token():
    sch = scheduler(share=False)
    cached(sch, 1, [1, 2, 3, 4, 5])
    sch.add(job([1, 2, 3, 4, 5]))
    out = sch.schedule(1.0)
    (admit,) = ops_of(out, Admit)
    assert admit.n_keep == 4
    assert [(e.tokens, e.pos0, e.output) for e in out.batch] == [([5], 4, True)]


def test_a_barely_similar_prompt_takes_an_empty_slot_not_a_long_cache():
    sch = scheduler(n_slots=2, share=False)
    long_cache = list(range(1, 200))
    cached(sch, 0, long_cache)
    # [1, 500] shares only the first token (a BOS) with slot 0's 199 cached tokens.
    sch.add(job([1, 500]))
    (admit,) = ops_of(sch.schedule(1.0), Admit)
    assert admit.slot.seq_id == 1 and admit.n_keep == 0
    assert len(sch.slots[0].cache) == 199


def test_a_host_memory_copy_is_restored_for_reuse():
    sch = scheduler(n_slots=2)
    s = sch.slots[0]
    s.saved_tokens, s.saved_state = list(range(40)), "state"
    sch.add(job(list(range(30)) + [99]))
    out = sch.schedule(1.0)
    (restore,) = ops_of(out, Restore)
    (admit,) = ops_of(out, Admit)
    assert restore.slot is s and restore.n_tokens == 40
    assert out.ops.index(restore) < out.ops.index(admit)
    assert admit.slot is s and admit.n_keep == 30 and s.cache == list(range(30))
    # Only its start was reused: the whole copy stays in host memory for a prompt that wants more.
    assert [(p.tokens, p.state) for p in sch.prompt_cache] == [(list(range(40)), "state")]


def test_a_copy_sharing_a_token_or_two_is_not_copied_back():
    sch = scheduler(n_slots=1)
    s = sch.slots[0]
    s.saved_tokens, s.saved_state = list(range(40)), "state"
    sch.add(job([0, 1, 70, 71, 72]))
    out = sch.schedule(1.0)
    assert not ops_of(out, Restore)
    assert ops_of(out, Admit)[0].n_keep == 0 and s.cache == []
    assert [p.state for p in sch.prompt_cache] == ["state"]  # kept for a prompt it fits


def test_max_tokens_zero_ends_without_a_slot():
    sch = scheduler()
    sch.add(job([1, 2], max_tokens=0))
    out = sch.schedule(1.0)
    assert [type(op) for op in out.ops] == [EndWaiting] and out.batch == []


def test_requests_beyond_the_slots_wait_in_arrival_order():
    sch = scheduler(n_slots=1, share=False)
    a, b = job([1, 2], rid=1), job([3, 4], rid=2)
    sch.add(a)
    sch.add(b)
    sch.schedule(1.0)
    assert sch.slots[0].job is a and list(sch.waiting) == [b]


# -- sharing across slots -------------------------------------------------------------------


SYSTEM = list(range(100, 160))  # a 60-token shared system prompt


def test_a_prefix_in_another_running_slot_is_shared_not_prefilled():
    sch = scheduler()
    runner = cached(sch, 0, SYSTEM + [1, 2, 3])
    runner.state, runner.job = SlotState.GENERATING, job(SYSTEM + [1, 2], rid=9)
    sch.add(job(SYSTEM + [7, 8], rid=2))
    out = sch.schedule(1.0)
    (admit,) = ops_of(out, Admit)
    assert admit.share_from is runner and admit.n_keep == 60 and admit.slot is not runner
    # The shared cells count once.
    assert used_cells(sch.slots) == len(runner.cache) + 0
    prompt_entries = [e for e in out.batch if e.slot is admit.slot]
    assert [(e.tokens, e.pos0) for e in prompt_entries] == [([7, 8], 60)]


def test_prompts_arriving_together_prefill_the_shared_prefix_once_and_fork():
    sch = scheduler(n_slots=4, n_batch=64)
    jobs = [job(SYSTEM + [i, i + 1], rid=i, arrived=i) for i in range(1, 4)]
    for j in jobs:
        sch.add(j)
    out = sch.schedule(1.0)
    first = sch.slot_of(jobs[0])
    waiting = [sch.slot_of(j) for j in jobs[1:]]
    assert first.state is SlotState.PROMPT
    assert all(s.state is SlotState.WAITING_PREFIX and s.fork_src is first and s.fork_n == 60 for s in waiting)
    # Only the first prompt is decoded: the others wait for its prefix.
    assert [e.slot for e in out.batch] == [first] and len(out.batch[0].tokens) == 62
    decode(sch, out)
    out = sch.schedule(2.0)
    forks = ops_of(out, Fork)
    assert {f.slot for f in forks} == set(waiting) and all(f.src is first and f.n == 60 for f in forks)
    # Each forked slot decodes only its own two tokens.
    assert sorted((e.slot.seq_id, len(e.tokens), e.pos0) for e in out.batch if e.slot in waiting) == [
        (s.seq_id, 2, 60) for s in sorted(waiting, key=lambda s: s.seq_id)]
    assert used_cells(sch.slots) == 62  # no new cells yet for the forks


def test_identical_prompts_fork_at_the_last_token():
    sch = scheduler(n_slots=2)
    a, b = job(SYSTEM, rid=1, arrived=1), job(SYSTEM, rid=2, arrived=2)
    sch.add(a)
    sch.add(b)
    sch.schedule(1.0)
    assert sch.slot_of(b).state is SlotState.WAITING_PREFIX and sch.slot_of(b).fork_n == 59


def test_sliding_window_models_stop_a_chunk_at_the_fork_point():
    sch = scheduler(n_slots=2, n_batch=512, swa=True)
    a, b = job(SYSTEM + [1, 2, 3], rid=1, arrived=1), job(SYSTEM + [9], rid=2, arrived=2)
    sch.add(a)
    sch.add(b)
    out = sch.schedule(1.0)
    # The source stops at 60 so the fork copies a complete window of cells.
    assert [(e.slot.job.rid, len(e.tokens)) for e in out.batch] == [(1, 60)]
    decode(sch, out)
    out = sch.schedule(2.0)
    assert ops_of(out, Fork)
    assert sorted((e.slot.job.rid, e.tokens) for e in out.batch) == [(1, [1, 2, 3]), (2, [9])]


def test_a_fork_whose_source_ends_early_prefills_alone():
    sch = scheduler(n_slots=2)
    a, b = job(SYSTEM + [1], rid=1, arrived=1), job(SYSTEM + [2], rid=2, arrived=2)
    sch.add(a)
    sch.add(b)
    sch.schedule(1.0)
    src, dst = sch.slot_of(a), sch.slot_of(b)
    sch.release(src, keep_cache=False)  # e.g. cancelled before its prompt was decoded
    assert dst.state is SlotState.PROMPT and dst.job.n_fed == 0
    out = sch.schedule(2.0)
    assert [(e.slot, len(e.tokens), e.pos0) for e in out.batch] == [(dst, 61, 0)]


def test_split_kv_never_shares():
    sch = scheduler(unified=False)
    runner = cached(sch, 0, SYSTEM)
    runner.state, runner.job = SlotState.GENERATING, job(SYSTEM, rid=9)
    sch.add(job(SYSTEM + [1], rid=2))
    (admit,) = ops_of(sch.schedule(1.0), Admit)
    assert admit.share_from is None and admit.fork_from is None and admit.n_keep == 0


def test_a_failed_share_falls_back_to_a_full_prefill():
    sch = scheduler()
    runner = cached(sch, 0, SYSTEM + [1])
    runner.state, runner.job = SlotState.GENERATING, job(SYSTEM, rid=9)
    sch.add(job(SYSTEM + [7], rid=2))
    out = sch.schedule(1.0)
    (admit,) = ops_of(out, Admit)
    sch.op_failed(admit)  # the engine could not share the cells (say, a pruned window)
    assert admit.slot.cache == [] and admit.job.n_fed == 0
    entries = [e for e in sch.plan() if e.slot is admit.slot]
    assert [(len(e.tokens), e.pos0) for e in entries] == [(61, 0)]


# -- room -----------------------------------------------------------------------------------


def test_idle_caches_make_room_before_running_work():
    sch = scheduler(n_slots=3, n_ctx=100, share=False, offload=False)
    idle = cached(sch, 0, range(60), last_used=1.0)
    runner = cached(sch, 1, range(1000, 1010))
    runner.state, runner.job = SlotState.GENERATING, job(range(1000, 1009), rid=9)
    runner.job.pending_token = 5
    sch.add(job(range(2000, 2050), rid=2))
    out = sch.schedule(2.0)
    assert [op.slot for op in ops_of(out, DropCache)] == [idle]
    assert not ops_of(out, Preempt)
    assert ops_of(out, Admit)


def test_a_full_cache_ends_the_longest_generation():
    sch = scheduler(n_slots=2, n_ctx=20, share=False, offload=False)
    long = cached(sch, 0, range(15))
    long.state, long.job = SlotState.GENERATING, job(range(10), rid=1)
    long.job.pending_token = 3
    short = cached(sch, 1, range(100, 105))
    short.state, short.job = SlotState.GENERATING, job(range(100, 104), rid=2)
    short.job.pending_token = 4
    # 20 cells, 20 used: the next step needs 2 more.
    out = sch.schedule(1.0)
    (preempt,) = ops_of(out, Preempt)
    assert preempt.slot is long and preempt.job.rid == 1
    assert long.state is SlotState.IDLE and long.cache == []
    assert [e.slot for e in out.batch] == [short]


def test_admission_waits_while_running_work_holds_the_cells():
    sch = scheduler(n_slots=2, n_ctx=100, share=False, offload=False)
    runner = cached(sch, 0, range(80))
    runner.state, runner.job = SlotState.GENERATING, job(range(79), rid=1)
    runner.job.pending_token = 1
    waiting = job(range(200, 250), rid=2)
    sch.add(waiting)
    out = sch.schedule(1.0)
    assert not ops_of(out, Admit) and list(sch.waiting) == [waiting]


def test_idle_caches_move_to_host_memory_while_others_run():
    sch = scheduler(n_slots=2)
    sch.cache_ram_bytes = 1 << 20
    idle = cached(sch, 0, range(50))
    runner = sch.slots[1]
    sch.add(job([7, 8, 9], rid=2))  # different prompt: takes the empty slot
    out = sch.schedule(1.0)
    (offload,) = ops_of(out, Offload)
    assert offload.slot is idle and offload.tokens == list(range(50))
    assert idle.cache == [] and idle.saved_tokens == list(range(50))
    assert runner.state is SlotState.PROMPT


# -- the batch --------------------------------------------------------------------------------


def test_decode_tokens_first_then_prompts_first_come_first_served():
    sch = scheduler(n_slots=3, n_batch=8, share=False)
    gen = cached(sch, 0, [1, 2])
    gen.state, gen.job = SlotState.GENERATING, job([1], rid=1)
    gen.job.pending_token = 7
    early, late = job(range(100, 110), rid=2, arrived=1.0), job(range(200, 203), rid=3, arrived=2.0)
    sch.add(early)
    sch.add(late)
    out = sch.schedule(1.0)
    assert (out.batch[0].slot, out.batch[0].tokens, out.batch[0].pos0, out.batch[0].output) == (gen, [7], 2, True)
    # The earlier prompt takes the whole rest of the batch; the later one waits a step.
    assert [(e.slot.job.rid, len(e.tokens), e.output) for e in out.batch[1:]] == [(2, 7, False)]
    decode(sch, out)
    out = sch.schedule(2.0)
    assert [(e.slot.job.rid, len(e.tokens), e.output) for e in out.batch] == [(2, 3, True), (3, 3, True)]


def test_plan_respects_unified_kv_room():
    sch = scheduler(n_slots=2, n_ctx=16, share=False, offload=False)
    other = cached(sch, 1, range(10))
    other.state, other.job = SlotState.GENERATING, job(range(9), rid=2)
    s = sch.slots[0]
    s.state, s.job = SlotState.PROMPT, job(range(40), rid=1)
    entries = sch.plan()
    assert sum(len(e.tokens) for e in entries if e.slot is s) == 6


def test_update_from_output_moves_prompts_on():
    sch = scheduler(n_slots=1, n_batch=4, share=False)
    sch.add(job(range(6)))
    out = sch.schedule(1.0)
    decode(sch, out)
    s = sch.slots[0]
    assert s.state is SlotState.PROMPT and s.job.n_fed == 4 and s.cache == [0, 1, 2, 3]
    out = sch.schedule(2.0)
    assert [(e.tokens, e.output) for e in out.batch] == [([4, 5], True)]
    decode(sch, out)
    assert s.state is SlotState.GENERATING


def test_shared_cells_are_counted_once_and_freed_when_the_last_holder_goes():
    a, b = Slot(0), Slot(1)
    a.extend(list(range(10)))
    b.share_from(a, 6)
    b.extend([50, 51])
    assert used_cells([a, b]) == 12
    a.clear()
    assert used_cells([a, b]) == 8  # b still holds the 6 shared cells and its own 2
    b.clear()
    assert used_cells([a, b]) == 0


def _saved(slot: Slot, tokens, state, last_used: float) -> Slot:
    """A slot whose cells went to host memory (what the engine leaves after an Offload)."""
    slot.saved_tokens, slot.saved_state, slot.saved_bytes, slot.last_used = list(tokens), state, 100, last_used
    return slot


def test_a_prompt_whose_slot_took_other_work_is_kept_and_restored_from_host_memory():
    sch = scheduler(n_slots=2)
    sch.cache_ram_bytes = 1 << 20
    a, c = _saved(sch.slots[0], range(50), "state-A", 1.0), _saved(sch.slots[1], range(500, 550), "state-C", 2.0)
    sch.add(job(range(900, 950), rid=1))  # like neither: takes the least recently used slot, A's
    out = sch.schedule(3.0)
    assert ops_of(out, Admit)[0].slot is a and not ops_of(out, DiscardSaved)
    assert [(p.tokens, p.state) for p in sch.prompt_cache] == [(list(range(50)), "state-A")]
    # A prompt that starts like A: A's copy goes back into the free slot, whose own copy (C)
    # takes A's place in the cache.
    sch.add(job(list(range(50)) + [7, 8], rid=2))
    out = sch.schedule(4.0)
    (restore,) = ops_of(out, Restore)
    (admit,) = [op for op in ops_of(out, Admit) if op.job.rid == 2]
    assert restore.slot is c and restore.n_tokens == 50 and out.ops.index(restore) < out.ops.index(admit)
    assert c.saved_state == "state-A" and admit.n_keep == 50 and c.cache == list(range(50))
    assert [(p.tokens, p.state) for p in sch.prompt_cache] == [(list(range(500, 550)), "state-C")]
    assert sch.stats()["cached_prompts"] == 1


def test_host_memory_copies_beyond_cache_ram_go_least_recently_used_first():
    sch = scheduler(n_slots=3)
    sch.cache_ram_bytes = 250  # room for two copies of 100 bytes
    _saved(sch.slots[0], range(50), "state-A", 1.0)
    _saved(sch.slots[1], range(500, 550), "state-C", 2.0)
    sch.add(job(range(900, 950), rid=1))  # takes the empty slot 2
    decode(sch, sch.schedule(3.0))
    sch.add(job(range(700, 750), rid=2))  # A's slot: A joins the cache
    decode(sch, sch.schedule(4.0))
    assert [p.state for p in sch.prompt_cache] == ["state-A"]
    # Request 1 ends; its prompt goes to host memory while request 2 runs.
    first = sch.slots[2]
    sch.release(first)
    out = sch.schedule(5.0)
    (offload,) = ops_of(out, Offload)
    assert offload.slot is first
    first.saved_state, first.saved_bytes = "state-B", 100  # what the engine sets
    # Three copies (A in the cache, C and B in their slots), room for two: the oldest, A, goes.
    sch.schedule(6.0)
    assert sch.prompt_cache == []
    assert [s.saved_state for s in sch.slots if s.saved_tokens] == ["state-C", "state-B"]


def test_a_sliding_window_copy_is_restored_whole_or_not_at_all():
    # llama.cpp saves a sliding-window sequence's last window only: it continues at its end.
    sch = scheduler(n_slots=1, swa=True)
    s = sch.slots[0]
    s.saved_tokens, s.saved_state = list(range(40)), "state"
    sch.add(job(list(range(30)) + [99]))  # would need the copy cut to 30
    out = sch.schedule(1.0)
    assert not ops_of(out, Restore) and ops_of(out, Admit)[0].n_keep == 0
    assert [p.state for p in sch.prompt_cache] == ["state"]
    sch.release(s, keep_cache=False)
    sch.add(job(list(range(40)) + [5, 6], rid=2))  # continues the whole copy
    out = sch.schedule(2.0)
    (restore,) = ops_of(out, Restore)
    assert restore.slot is s and ops_of(out, Admit)[0].n_keep == 40
