"""Prefix sharing across slots keeps answers identical: full attention and sliding windows, unified and split KV,
with and without the host-memory cache."""
from __future__ import annotations

import time

import pytest

from tests.engine.conftest import greedy, submit
from tests.engine.test_engine import EXACT

SYSTEM = ("You are a careful assistant. The quick brown fox jumps over the lazy dog, and the dog "
          "sleeps while the fox runs in the field. ")
SUFFIXES = ["hello", "the fox", "a dog in the field", "hello"]  # the last one repeats the first


def _reference(make_engine, path, prompts, tokens):
    """Each prompt on a fresh one-slot engine: nothing to reuse or share."""
    out = []
    for p in prompts:
        engine = make_engine(path, n_slots=1, n_ctx=1024, **EXACT)
        out.append(submit(engine, p, greedy(tokens, ignore_eos=True)).wait().text)
        engine.close()
    return out


@pytest.mark.parametrize("model", ["spm-random-sharp", "swa-random-sharp"])
@pytest.mark.parametrize("unified", [True, False])
@pytest.mark.parametrize("cache_ram", [0, 64])
def test_requests_arriving_together_with_one_system_prompt(model, unified, cache_ram, gguf_path, make_engine):
    path = gguf_path(model)
    prompts = [SYSTEM + s for s in SUFFIXES]
    want = _reference(make_engine, path, prompts, 12)
    engine = make_engine(path, n_slots=4, n_ctx=1024, kv_unified=unified, cache_ram_mib=cache_ram, **EXACT)
    runs = [submit(engine, p, greedy(12, ignore_eos=True)) for p in prompts]
    got = [r.wait() for r in runs]
    assert [r.text for r in got] == want
    n_system = got[0].end.usage.prompt_tokens - 2  # the shared part, give or take the suffix
    shared = [r.end.usage.cached_tokens for r in got[1:]]
    if unified:
        # The three later requests forked from the first one's prefill instead of their own.
        assert all(c >= n_system - 8 for c in shared), shared
    else:
        assert shared == [0, 0, 0]  # a split cache copies whole streams only: no sharing


@pytest.mark.parametrize("model", ["spm-random-sharp", "swa-random-sharp"])
def test_a_request_shares_the_cells_of_a_running_generation(model, gguf_path, make_engine):
    path = gguf_path(model)
    first, second = SYSTEM + "hello", SYSTEM + "the fox"
    want = _reference(make_engine, path, [first, second], 30)
    engine = make_engine(path, n_slots=2, n_ctx=1024, **EXACT)
    running = submit(engine, first, greedy(30, ignore_eos=True))
    while len(running.deltas) < 10:  # well past its prompt: the window moved on
        time.sleep(0.002)
    late = submit(engine, second, greedy(30, ignore_eos=True)).wait()
    assert running.wait().text == want[0]
    assert late.text == want[1]
    assert late.end.usage.cached_tokens > 20


def test_shared_cells_survive_the_source_going_away(gguf_path, make_engine):
    path = gguf_path("spm-random-sharp")
    first, second = SYSTEM + "hello", SYSTEM + "the fox"
    want = _reference(make_engine, path, [second], 40)
    engine = make_engine(path, n_slots=2, n_ctx=1024, **EXACT)
    source = submit(engine, first, greedy(3, ignore_eos=True))
    sharer = submit(engine, second, greedy(40, ignore_eos=True))
    assert source.wait().end.usage.completion_tokens == 3
    # The source ended early and its idle cells moved to host memory (or were dropped);
    # the sharer's copy of the prefix stays valid until the end.
    assert sharer.wait().text == want[0]
    assert sharer.end.usage.cached_tokens > 20


def test_n_choices_of_one_prompt_prefill_it_once(gguf_path, make_engine):
    path = gguf_path("spm-random-sharp")
    engine = make_engine(path, n_slots=4, n_ctx=1024, **EXACT)
    runs = [submit(engine, SYSTEM, greedy(8, ignore_eos=True)) for _ in range(4)]
    got = [r.wait() for r in runs]
    assert len({r.text for r in got}) == 1
    assert [r.end.usage.cached_tokens for r in got[1:]] == [got[0].end.usage.prompt_tokens - 1] * 3


def test_a_pruned_window_is_not_shared_and_the_answer_stays_right(gguf_path, make_engine):
    # A window cache sized to the windows (llama-server's default; 256 cells here): as the
    # source generates, its old window cells are reused, so its prefix's window is gone and
    # copying it would silently give wrong answers. The runtime sees that and prefills.
    path = gguf_path("swa-random-sharp")
    first, second = SYSTEM + "hello", SYSTEM + "the fox"
    small = {"swa_full": False, "n_batch": 64, "n_ubatch": 32, **EXACT}
    want = []
    for p, n in ((first, 320), (second, 8)):
        ref = make_engine(path, n_slots=1, n_ctx=1024, **small)
        want.append(submit(ref, p, greedy(n, ignore_eos=True)).wait().text)
        ref.close()
    engine = make_engine(path, n_slots=2, n_ctx=1024, **small)
    running = submit(engine, first, greedy(320, ignore_eos=True))
    while len(running.deltas) < 300:
        time.sleep(0.002)
    late = submit(engine, second, greedy(8, ignore_eos=True)).wait()
    assert late.text == want[1]
    assert late.end.usage.cached_tokens == 0  # not shared: the window was pruned
    assert running.wait().text == want[0]


@pytest.mark.parametrize("model", ["spm-random-sharp", "swa-random-sharp"])
def test_more_conversations_than_slots_come_back_from_host_memory(model, gguf_path, make_engine):
    # Four conversations through two slots: by the time the first one goes on, both slots have
    # served others since. Its prompt comes back from the host-memory prompt cache (as with
    # llama-server's --cache-ram), and the answer is what a fresh engine gives.
    path = gguf_path(model)
    starts = ["alpha beta gamma ", "one two three ", "red green blue ", "north south east "]
    convs = [start + SYSTEM for start in starts]
    follow_up = convs[0] + "and then the fox"
    want = _reference(make_engine, path, [follow_up], 10)
    engine = make_engine(path, n_slots=2, n_ctx=1024, cache_ram_mib=64, **EXACT)
    for conv in convs:
        submit(engine, conv, greedy(4, ignore_eos=True)).wait()
    got = submit(engine, follow_up, greedy(10, ignore_eos=True)).wait()
    assert got.text == want[0]
    assert engine._engine.scheduler.stats()["cached_prompts"] >= 2
    if model.startswith("spm"):
        assert got.end.usage.cached_tokens >= got.end.usage.prompt_tokens - 12
    else:
        # The follow-up leaves out the generated tokens, so it would need the copy cut short:
        # a sliding-window state holds only its last window, so it is not restored at all.
        assert got.end.usage.cached_tokens == 0
    # Without a host-memory budget nothing is kept beyond the slots: the prompt is prefilled.
    bare = make_engine(path, n_slots=2, n_ctx=1024, cache_ram_mib=0, **EXACT)
    for conv in convs:
        submit(bare, conv, greedy(4, ignore_eos=True)).wait()
    again = submit(bare, follow_up, greedy(10, ignore_eos=True)).wait()
    assert again.text == want[0] and again.end.usage.cached_tokens <= 2
