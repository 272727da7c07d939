"""The engine's step counters reach /metrics read at scrape time: nothing lost at unload, nothing counted twice."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from server.engine.messages import StepStats
from server.metrics import Metrics


def sample(m: Metrics, name: str, model: str = "m") -> float | None:
    text = m.exposition()[0].decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("model") == model:
                return s.value
    return None


def test_gauges_show_the_latest_step_and_counters_the_engine_totals():
    m = Metrics()
    mm = m.for_model("m", 4)
    assert sample(m, "llamaslots_slots_idle") == 4
    mm.step(StepStats(busy_slots=1, waiting=2, kv_used=10, prompt_tokens_total=5, sampled_total=3))
    mm.step(StepStats(busy_slots=3, waiting=0, kv_used=40, prompt_tokens_total=9, sampled_total=6))
    assert sample(m, "llamaslots_slots_busy") == 3
    assert sample(m, "llamaslots_slots_idle") == 1
    assert sample(m, "llamaslots_requests_waiting") == 0
    assert sample(m, "llamaslots_kv_cells_used") == 40
    assert sample(m, "llamaslots_prompt_tokens_decoded_total") == 9
    assert sample(m, "llamaslots_tokens_sampled_total") == 6
    # A second scrape without new steps adds nothing.
    assert sample(m, "llamaslots_tokens_sampled_total") == 6


def test_an_unload_keeps_the_last_steps_and_a_restarted_engine_counts_on():
    m = Metrics()
    mm = m.for_model("m", 2)
    mm.step(StepStats(busy_slots=1, prompt_tokens_total=7, sampled_total=4))
    m.model_unloaded("m", "died", 0.1, resident=0)  # no scrape in between
    assert sample(m, "llamaslots_slots_busy") is None  # an unloaded model has no slots
    assert sample(m, "llamaslots_tokens_sampled_total") == 4
    again = m.for_model("m", 2)  # its new engine counts from zero again
    again.step(StepStats(busy_slots=2, prompt_tokens_total=1, sampled_total=2))
    assert sample(m, "llamaslots_prompt_tokens_decoded_total") == 8
    assert sample(m, "llamaslots_tokens_sampled_total") == 6
    assert sample(m, "llamaslots_slots_busy") == 2


def test_loop_histograms_expose_what_prometheus_clients_histogram_would():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from prometheus_client import CollectorRegistry, Histogram

    from server.metrics import LoopHistograms

    bounds = (0.001, 0.0025, 0.01, 1.0, 2.5)

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.sampled_from(bounds) | st.floats(0, 5, allow_nan=False), max_size=30))
    def check(values):
        ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
        ours = LoopHistograms("x_seconds", "doc", bounds, ours_registry)
        theirs = Histogram("x_seconds", "doc", ["model"], buckets=bounds, registry=theirs_registry)
        for v in values:
            ours.labels("m").observe(v)
            theirs.labels("m").observe(v)

        def samples(registry):
            return {(s.name, tuple(sorted(s.labels.items()))): round(s.value, 9)
                    for f in registry.collect() for s in f.samples if not s.name.endswith("_created")}

        assert samples(ours_registry) == samples(theirs_registry)

    check()
