"""The slot engine on real tiny GGUFs: exact scripted outputs, batch invariance, context policy."""
from __future__ import annotations

import time

import pytest

from compat.params import GenerationParams, SamplingParams
from server.engine.batch import Batch
from server.engine.client import LocalEngine as Engine
from server.engine.types import Failed, Finished, GenerateRequest
from server.errors import EngineFailed, PromptTooLong
from tests.engine.conftest import Run, greedy, submit
from tests.gguf_models import EOS, IM_END, SCRIPTED_CASES

# Results that do not depend on where cells sit in the KV cache: CPU flash attention rounds
# through f16 in an order that follows the cells (logits move by ~5e-3 when a freed cell is
# reused out of position order, measured), plain attention over an f32 cache by ~1e-5.
EXACT = {"flash_attention": "off", "cache_type_k": "f32", "cache_type_v": "f32"}

PROMPTS = [
    "The quick brown fox",
    "Hello world, the lazy dog",
    "a",
    "in the dog of an",
    "The The The quick",
    "jumps over the lazy dog and the fox",
    "hello",
    "to and in on",
]


def _completion_tokens(case) -> int:
    ends_on_eog = case.finish == "stop" and case.tokens and case.tokens[-1] in (EOS, IM_END)
    return len(case.tokens) - (1 if ends_on_eog else 0)


@pytest.mark.parametrize("model", ["spm-scripted", "bpe-scripted"])
def test_scripted_cases_exact_under_concurrency(model, gguf_path, make_engine):
    engine = make_engine(gguf_path(model), n_slots=4)
    # All cases at once: more requests than slots, so some wait in the queue.
    runs = {
        name: submit(engine, case.prompt, greedy(case.max_tokens, case.stop))
        for name, case in SCRIPTED_CASES.items()
    }
    for name, case in SCRIPTED_CASES.items():
        run = runs[name].wait()
        assert isinstance(run.end, Finished), (name, run.end)
        assert run.text == case.text, name
        assert run.end.reason == case.finish, name
        if not case.stop:
            assert run.end.usage.completion_tokens == _completion_tokens(case), name


def test_control_tokens_never_leak_and_utf8_arrives_whole(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-scripted"), n_slots=2)
    hidden = submit(engine, "special", greedy(16)).wait()
    assert hidden.text == " after" and "<|im_start|>" not in hidden.text
    eog = submit(engine, "Hello", greedy(16)).wait()
    assert eog.text == " world!" and eog.end.reason == "stop"
    utf8 = submit(engine, "unicode", greedy(32)).wait()
    assert utf8.text == " café 中文🦙"
    # Every delta is valid text on its own: no replacement characters from split bytes.
    assert all("\ufffd" not in d for d in utf8.deltas)
    assert "中文🦙" in utf8.deltas[-1] or any("🦙" in d for d in utf8.deltas)


def test_each_delta_carries_the_tokens_its_text_came_from(gguf_path, make_engine):
    # Held-back text (a character split over byte tokens, the start of a stop string) goes out
    # with a later token: that delta carries both tokens, so every token is counted once.
    engine = make_engine(gguf_path("spm-scripted"), n_slots=2)
    utf8 = submit(engine, "unicode", greedy(32)).wait()
    assert sum(utf8.n_tokens) == utf8.end.usage.completion_tokens
    assert max(utf8.n_tokens) > 1 and min(utf8.n_tokens) >= 1
    held = submit(engine, "one", greedy(32, stop=[" three fourX"])).wait()  # never completes
    assert held.text == " two three four five"
    assert sum(held.n_tokens) == held.end.usage.completion_tokens and max(held.n_tokens) > 1


def test_stop_string_split_across_tokens_is_held_back_while_streaming(gguf_path, make_engine):
    engine = make_engine(gguf_path("bpe-scripted"), n_slots=2)
    run = submit(engine, "ask", greedy(32, stop=["### Human:"])).wait()
    assert run.text == " Sure thing"
    assert all("#" not in d for d in run.deltas), run.deltas
    assert run.end.reason == "stop"


def test_max_tokens_absent_runs_to_the_end_of_generation(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-scripted"))
    run = submit(engine, "one", greedy(None)).wait()
    assert run.text == " two three four five" and run.end.reason == "stop"


def test_length_when_budget_runs_out(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-scripted"))
    run = submit(engine, "The", greedy(5)).wait()
    assert run.end.reason == "length"
    assert run.end.usage.completion_tokens == 5
    assert run.text == " quick brown fox jumps over"


def _alone_then_together(engine: Engine, params: GenerationParams) -> tuple[dict, dict]:
    alone = {p: submit(engine, p, params).wait() for p in PROMPTS}
    together_runs = {p: submit(engine, p, params) for p in PROMPTS}
    together = {p: r.wait() for p, r in together_runs.items()}
    return alone, together


@pytest.mark.parametrize("unified", [True, False])
def test_concurrent_greedy_equals_alone(unified, gguf_path, make_engine):
    # The sharp random model: with near-uniform logits (top-2 gaps ~1e-5, measured on
    # spm-random) greedy decoding flips on any change of summation order, batched or not.
    engine = make_engine(gguf_path("spm-random-sharp"), n_slots=8, kv_unified=unified, n_ctx=1024)
    alone, together = _alone_then_together(engine, greedy(24, ignore_eos=True))
    for p in PROMPTS:
        assert together[p].text == alone[p].text, p
        assert together[p].end.usage.completion_tokens == 24


def test_seeded_sampling_is_reproducible_under_load(gguf_path, make_engine):
    engine = make_engine(gguf_path("bpe-random"), n_slots=4)
    params = GenerationParams(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=42, ignore_eos=True), 20)
    alone = submit(engine, "The quick brown fox", params).wait()
    noise = [submit(engine, p, greedy(30, ignore_eos=True)) for p in PROMPTS[1:4]]
    loaded = submit(engine, "The quick brown fox", params).wait()
    for r in noise:
        r.wait()
    assert loaded.text == alone.text
    other_seed = GenerationParams(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7, ignore_eos=True), 20)
    assert submit(engine, "The quick brown fox", other_seed).wait().text != alone.text


def test_long_prompt_arriving_mid_decode_does_not_change_others(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=4, n_ctx=2048, n_batch=64)
    params = greedy(40, ignore_eos=True)
    alone = {p: submit(engine, p, params).wait().text for p in PROMPTS[:3]}
    runs = {p: submit(engine, p, params) for p in PROMPTS[:3]}
    time.sleep(0.02)
    long_prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 60)
    long_run = submit(engine, long_prompt, greedy(4, ignore_eos=True))
    for p, r in runs.items():
        assert r.wait().text == alone[p], p
    assert long_run.wait().end.reason == "length"


def test_cancel_frees_the_slot(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-scripted"), n_slots=1, n_ctx=2048)
    looping = Run()
    rid = None

    def sink(ev):
        looping.sink(ev)
        if len(looping.deltas) == 3:
            engine.cancel(rid)  # like a client that disconnects mid-stream

    rid = engine.submit(GenerateRequest("The", greedy(None)), sink)  # loops until the context is full
    # The single slot is taken: this one waits in the queue until the first is cancelled.
    waiting = submit(engine, "one", greedy(None))
    looping.wait()
    assert looping.end.reason == "cancelled"
    assert looping.end.usage.completion_tokens < 20
    assert waiting.wait().text == " two three four five"
    stats = engine.stats().result()
    assert all(s["state"] == "idle" for s in stats["slots"]) and stats["waiting"] == 0


def test_prefix_reuse_shows_in_usage(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=2)
    prompt = "The quick brown fox jumps over the lazy dog and the fox"
    first = submit(engine, prompt, greedy(4, ignore_eos=True)).wait()
    second = submit(engine, prompt + " and the dog", greedy(4, ignore_eos=True)).wait()
    assert first.end.usage.cached_tokens == 0
    assert second.end.usage.cached_tokens >= first.end.usage.prompt_tokens - 1
    # Same output as computing it from scratch on a fresh engine.
    fresh = make_engine(gguf_path("spm-random"), n_slots=2)
    assert submit(fresh, prompt + " and the dog", greedy(4, ignore_eos=True)).wait().text == second.text


def test_one_request_may_use_the_whole_unified_context(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=8, n_ctx=1024)
    long = submit(engine, "The", greedy(None, ignore_eos=True))
    shorts = []
    while not long.done.is_set():
        shorts.append(submit(engine, "hello", greedy(8, ignore_eos=True)).wait())
        if len(shorts) > 200:
            break
    long.wait()
    usage = long.end.usage
    assert long.end.reason == "length"
    assert usage.prompt_tokens + usage.completion_tokens >= 1000
    assert all(s.end.reason == "length" and s.end.usage.completion_tokens == 8 for s in shorts), [s.end for s in shorts if s.end.usage.completion_tokens != 8 or s.end.reason != "length"]


def test_split_cache_limits_each_request_to_its_share(gguf_path, make_engine):
    # LocalAI's split: 2048 cells for 8 slots is 256 per request (llama.cpp pads shares to 256).
    engine = make_engine(gguf_path("spm-random"), n_slots=8, n_ctx=2048, kv_unified=False)
    assert engine.info.n_ctx_seq == 256
    run = submit(engine, "The", greedy(None, ignore_eos=True)).wait()
    assert run.end.reason == "length"
    assert run.end.usage.prompt_tokens + run.end.usage.completion_tokens == 256


def test_full_shared_cache_ends_the_longest_generation_only(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=2, n_ctx=256)
    a = submit(engine, "The", greedy(None, ignore_eos=True))
    time.sleep(0.05)
    b = submit(engine, "hello", greedy(60, ignore_eos=True))
    a.wait()
    b.wait()
    assert a.end.reason == "length"
    # b asked for 60 tokens and gets all of them: a gave way, not b.
    assert b.end.reason == "length" and b.end.usage.completion_tokens == 60
    assert a.end.usage.prompt_tokens + a.end.usage.completion_tokens <= 256


def test_prompt_too_long_is_an_error_with_counts(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_ctx=256)
    run = submit(engine, "the " * 400, greedy(4)).wait()
    assert isinstance(run.end, Failed) and isinstance(run.end.error, PromptTooLong)
    assert run.end.error.n_ctx == 256 and run.end.error.n_prompt > 256


def test_embeddings_are_pooled_and_normalized(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), embeddings=True)
    a, b, a2 = engine.embed(["the quick brown fox", "hello world", "the quick brown fox"]).result()
    assert abs(sum(x * x for x in a) - 1.0) < 1e-4
    assert a == pytest.approx(a2, abs=1e-5)
    assert a != pytest.approx(b, abs=1e-3)


def test_embeddings_refused_without_config_flag(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"))
    with pytest.raises(Exception, match="embeddings"):
        engine.embed(["x"]).result()


def test_batch_rows_are_checked_before_llama_cpp(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=2)
    batch = Batch(capacity=3, n_seq=2, n_vocab=engine.info.n_vocab)
    try:
        with pytest.raises(EngineFailed, match="sequence id"):
            batch.add([1], 0, 5, True)
        with pytest.raises(EngineFailed, match="vocabulary"):
            batch.add([1, engine.info.n_vocab], 0, 0, True)
        with pytest.raises(EngineFailed, match="vocabulary"):
            batch.add([-1], 0, 0, True)
        assert batch.n == 0  # a refused entry writes nothing
        assert batch.add([1, 2], 0, 0, False) == 1
        assert batch.add([1], 0, 1, True) == 2
        assert list(batch.pos[:3]) == [0, 1, 0] and list(batch.seq[:3]) == [0, 0, 1]
        assert list(batch.logits[:3]) == [0, 0, 1] and batch.n_outputs == 1
        with pytest.raises(EngineFailed, match="overflow"):
            batch.add([1], 2, 0, True)
    finally:
        batch.free()
    # The engine is unharmed.
    assert submit(engine, "hello", greedy(3, ignore_eos=True)).wait().end.usage.completion_tokens == 3


def test_bad_prompt_tokens_fail_only_that_request(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"))
    bad = submit(engine, [1, 999999], greedy(3)).wait()
    assert isinstance(bad.end, Failed) and "vocabulary" in bad.end.error.message
    assert submit(engine, "hello", greedy(3, ignore_eos=True)).wait().end.reason == "length"


def test_grammar_constrains_the_output(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=2)
    grammar = 'root ::= ("yes" | "no") "."'
    for seed in range(4):
        params = GenerationParams(SamplingParams(temperature=1.0, seed=seed, grammar=grammar), max_tokens=8)
        run = submit(engine, "hello", params).wait()
        assert run.text in ("yes.", "no."), run.text
        assert run.end.reason == "stop"


def test_json_object_grammar_gives_json(gguf_path, make_engine):
    import json

    from compat.request_params import JSON_OBJECT_GBNF

    engine = make_engine(gguf_path("spm-random"), n_slots=1, n_ctx=1024)
    for temperature, seed in ((0.0, None), (0.7, 1)):
        sampling = SamplingParams(temperature=temperature, seed=seed, grammar=JSON_OBJECT_GBNF)
        params = GenerationParams(sampling, max_tokens=200)
        run = submit(engine, "hello", params).wait()
        # The grammar ends the object, so the model stops by itself with a JSON object.
        assert run.end.reason == "stop"
        assert isinstance(json.loads(run.text), dict)


def test_bad_grammar_fails_only_that_request(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=1)
    bad = submit(engine, "hello", GenerationParams(SamplingParams(grammar="root ::= ("), max_tokens=4)).wait()
    assert isinstance(bad.end, Failed) and "grammar" in bad.end.error.message
    assert submit(engine, "hello", greedy(2, ignore_eos=True)).wait().end.usage.completion_tokens == 2


@pytest.mark.parametrize("mirostat", [1, 2])
def test_mirostat_is_seeded(mirostat, gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=2)
    p = GenerationParams(SamplingParams(temperature=0.8, seed=3, mirostat=mirostat, ignore_eos=True), max_tokens=12)
    assert submit(engine, "hello", p).wait().text == submit(engine, "hello", p).wait().text


def test_shutdown_cancels_in_flight_work(gguf_path):
    from compat.model_settings import LoadSettings

    engine = Engine(LoadSettings(model_path=gguf_path("spm-scripted"), n_ctx=2048, n_slots=1, n_threads=2))
    running = submit(engine, "The", greedy(None))
    queued = submit(engine, "one", greedy(None))
    while not running.deltas:
        time.sleep(0.01)
    engine.close()
    assert running.wait(5).end.reason == "cancelled"
    assert queued.wait(5).end.reason in ("cancelled", "stop")
    assert not engine.alive


def test_idle_caches_give_way_to_a_new_prompt_not_running_work(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=3, n_ctx=256)
    long_prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)
    cached = submit(engine, long_prompt, greedy(2, ignore_eos=True)).wait()
    assert cached.end.usage.prompt_tokens > 100
    runner = submit(engine, "hello", greedy(40, ignore_eos=True))
    while not runner.deltas:
        time.sleep(0.005)
    newcomer = submit(engine, "a " * 90, greedy(4, ignore_eos=True)).wait()
    assert newcomer.end.reason == "length" and newcomer.end.usage.completion_tokens == 4
    runner.wait()
    # The running generation was not cut for the newcomer: the idle cache was dropped instead.
    assert runner.end.usage.completion_tokens == 40
    slots = engine.stats().result()["slots"]
    assert max(s["n_cached"] for s in slots) < cached.end.usage.prompt_tokens


def test_embeddings_of_many_inputs_share_decodes_and_match_one_by_one(gguf_path, make_engine):
    import llama_cpp

    engine = make_engine(gguf_path("spm-random"), embeddings=True, n_slots=2)
    texts = [f"the quick brown fox number {i}" for i in range(9)] + ["hello"]
    one_by_one = [engine.embed([t]).result()[0] for t in texts]
    calls = []
    original = llama_cpp.llama_decode

    def counting(ctx, batch):
        calls.append(batch.n_tokens)
        return original(ctx, batch)

    llama_cpp.llama_decode = counting
    try:
        together = engine.embed(texts).result()
    finally:
        llama_cpp.llama_decode = original
    # 10 inputs over 4 embedding sequences: 3 decodes, not 10.
    assert len(calls) == 3
    for a, b in zip(together, one_by_one):
        assert a == pytest.approx(b, abs=1e-4)


def test_idle_cache_moves_to_ram_while_others_run_and_comes_back_for_reuse(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=2, n_ctx=1024)
    prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 5)
    first = submit(engine, prompt, greedy(4, ignore_eos=True)).wait()
    other = submit(engine, "hello", greedy(30, ignore_eos=True))
    while len(other.deltas) < 3:
        time.sleep(0.005)
    slots = engine.stats().result()["slots"]
    idle = [s for s in slots if s["state"] == "idle"]
    # While another request runs, the idle prompt holds no KV cells: it waits in host memory.
    assert idle and idle[0]["n_cached"] == 0 and idle[0]["n_saved"] >= first.end.usage.prompt_tokens
    other.wait()
    again = submit(engine, prompt + " and the fox", greedy(8, ignore_eos=True)).wait()
    assert again.end.usage.cached_tokens >= first.end.usage.prompt_tokens - 1
    fresh = make_engine(gguf_path("spm-random"), n_slots=2, n_ctx=1024)
    assert submit(fresh, prompt + " and the fox", greedy(8, ignore_eos=True)).wait().text == again.text


def test_cache_ram_zero_keeps_idle_caches_in_the_kv_cache(gguf_path, make_engine):
    engine = make_engine(gguf_path("spm-random"), n_slots=2, n_ctx=1024, cache_ram_mib=0)
    first = submit(engine, "the quick brown fox jumps over the lazy dog", greedy(4, ignore_eos=True)).wait()
    other = submit(engine, "hello", greedy(30, ignore_eos=True))
    while len(other.deltas) < 3:
        time.sleep(0.005)
    idle = [s for s in engine.stats().result()["slots"] if s["state"] == "idle"]
    assert idle[0]["n_cached"] >= first.end.usage.prompt_tokens and idle[0]["n_saved"] == 0
    other.wait()


def test_sampling_a_row_without_logits_fails_the_request_not_the_process(gguf_path, make_engine, monkeypatch):
    from server.engine import engine as engine_module

    engine = make_engine(gguf_path("spm-scripted"), n_slots=1)
    original = engine_module.Engine._add_entry

    def buggy(self, e):
        # What a scheduler bug would do: point the request at a row that has no logits.
        original(self, e)
        if e.slot.job is not None and e.output:
            e.slot.job.i_batch = self.batch.capacity + 5

    monkeypatch.setattr(engine_module.Engine, "_add_entry", buggy)
    run = submit(engine, "The", greedy(None))
    assert isinstance(run.wait(5).end, Failed) and "no logits" in run.end.error.message
    monkeypatch.setattr(engine_module.Engine, "_add_entry", original)
    assert submit(engine, "one", greedy(None)).wait().text == " two three four five"


@pytest.mark.parametrize("extra", [{}, {"ignore_eos": True}, {"logit_bias": {5: 2.5, 9: -1.0}}])
def test_batched_argmax_picks_what_the_sampler_chain_picks(gguf_path, make_engine, monkeypatch, extra):
    # Greedy rows are sampled from the step's logits with numpy; requests with seed 1 are sent
    # through llama.cpp's own sampler chain instead, row by row, for the comparison.
    from server.engine import engine as engine_module
    from server.engine.sampling import SamplerChain

    class ChainOnSeedOne(SamplerChain):
        def __init__(self, params, **kw):
            super().__init__(params, **kw)
            if params.seed == 1:
                self.numpy_greedy = False

    monkeypatch.setattr(engine_module, "SamplerChain", ChainOnSeedOne)
    engine = make_engine(gguf_path("spm-random-sharp"), n_slots=8, n_ctx=1024, **EXACT)
    chain = GenerationParams(SamplingParams(temperature=0.0, seed=1, **extra), max_tokens=16)
    fast = GenerationParams(SamplingParams(temperature=0.0, seed=2, **extra), max_tokens=16)
    via_chain = [submit(engine, p, chain) for p in PROMPTS]
    via_numpy = [submit(engine, p, fast) for p in PROMPTS]
    for a, b in zip(via_chain, via_numpy):
        assert a.wait().text == b.wait().text
