"""Reasoning tokens: counted by which part of the reply each sampled token's text went to, reported as OpenAI does."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from compat.postprocess import StreamPostprocessor
from compat.reasoning import ReasoningSettings
from server.api.answers import ChoicePipeline
from server.engine.types import Usage
from tests.api.fakes import model_config


def pipeline(reasoning: ReasoningSettings | None = ReasoningSettings(), prefix: str = "", **config) -> ChoicePipeline:
    return ChoicePipeline(StreamPostprocessor(model_config("m", **config)), prefix, reasoning)


def count(deltas: list[tuple[str, int]], **kw) -> int | None:
    p = pipeline(**kw)
    for text, n in deltas:
        p.feed(text, n)
    p.finish()
    return p.reasoning_tokens


def test_tokens_inside_a_block_and_its_markers_are_reasoning():
    assert count([("<think>", 1), ("let me", 2), (" see", 1), ("</think>", 1), ("42", 1)]) == 5
    assert count([("42", 1)]) == 0
    # A delta across the end marker is shared by characters: "ab</think>" is reasoning, "cd" not.
    assert count([("<think>", 1), ("ab</think>cd", 6)]) == 1 + 5
    # A block the reply never closes is reasoning to the end.
    assert count([("<think>", 1), ("still thinking", 3)]) == 4


def test_a_block_opened_by_the_prompt_or_reply_prefix_counts_from_the_first_token():
    p = ChoicePipeline(StreamPostprocessor(model_config("m")), "", ReasoningSettings(), inside="</think>")
    for text, n in [("hmm", 2), ("</think>", 1), ("ok", 1)]:
        p.feed(text, n)
    p.finish()
    assert p.reasoning_tokens == 3
    assert count([("hmm</think>", 3), ("42", 2)], prefix="<think>") == 3


def test_text_a_stage_holds_back_brings_its_tokens_along():
    # trimsuffix holds a tail of up to len("END") characters back: tokens wait with their text
    # and are counted where it comes out, so the count can be off by what the stage holds.
    deltas = [("<think>", 1), ("a", 1), ("b", 1), ("</think>", 1), ("x ", 1), ("END", 1)]
    assert count(deltas) == 4
    assert abs(count(deltas, trimsuffix=["END"]) - 4) <= 2
    # Without such a stage nothing waits: a long reply is counted exactly.
    long = [("<think>", 1)] + [("w ", 1)] * 50 + [("</think>", 1)] + [("c ", 1)] * 30
    assert count(long) == 52


def test_no_split_no_count_and_a_dropped_reasoning_still_counts():
    assert count([("<think>a</think>b", 3)], reasoning=None) is None
    assert count([("<think>a</think>b", 3)], reasoning=ReasoningSettings(split=False)) is None
    assert count([("<think>", 1), ("a", 1), ("</think>", 1), ("b", 1)], reasoning=ReasoningSettings(keep=False)) == 3


def test_counted_usage_never_exceeds_the_completion():
    p = pipeline()
    p.feed("<think>a", 5)
    p.finish()
    assert p.counted(Usage(3, 4)).reasoning_tokens == 4  # a stale count is bounded by what was sampled
    assert pipeline(reasoning=None).counted(Usage(3, 4)).reasoning_tokens is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["<think>", "</think>", "a", "bc", " ", "<thi", "nk>", "</th"]),
                          st.integers(min_value=0, max_value=3)), max_size=12))
def test_the_count_is_between_zero_and_every_token(deltas):
    n = count(deltas)
    assert n is not None and 0 <= n <= sum(k for _, k in deltas)
