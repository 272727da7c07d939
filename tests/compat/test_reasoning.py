"""compat.reasoning: LocalAI's reasoning settings, and the reasoning/content split whole and streamed."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from compat.errors import RequestError
from compat.reasoning import ReasoningSplitter, open_reasoning, reasoning_settings, split_reasoning

ON = reasoning_settings(SimpleNamespace(reasoning=None, reasoning_effort=""), {})


def test_think_block_is_split_out_with_its_whitespace():
    assert split_reasoning("<think>\nLet me see.\n</think>\n\nParis.", ON) == ("Let me see.", "Paris.")
    assert split_reasoning("No thinking here.", ON) == ("", "No thinking here.")


def test_a_prompt_that_opened_the_tag_starts_the_reply_inside_reasoning():
    end = open_reasoning("<|im_start|>assistant\n<think>\n", ON)
    assert end == "</think>"
    assert split_reasoning("hmm, two plus two\n</think>\n4", ON, end) == ("hmm, two plus two", "4")
    assert open_reasoning("<|im_start|>assistant\n", ON) is None


def test_other_markers_several_blocks_and_an_unclosed_one():
    assert split_reasoning("[THINK]a[/THINK]b<|START_THINKING|>c<|END_THINKING|>d", ON) == ("a\n\nc", "bd")
    # Cut by max_tokens mid-thought: what came is reasoning.
    assert split_reasoning("<think>still thinking", ON) == ("still thinking", "")


def test_config_and_effort():
    off = reasoning_settings(SimpleNamespace(reasoning={"disable": True}, reasoning_effort=""), {})
    assert split_reasoning("<think>x</think>y", off) == ("", "<think>x</think>y")
    by_request = reasoning_settings(SimpleNamespace(reasoning=None, reasoning_effort=""), {"reasoning_effort": "none"})
    assert not by_request.split
    strip = reasoning_settings(SimpleNamespace(reasoning={"strip_reasoning_only": True}, reasoning_effort=""), {})
    assert split_reasoning("<think>x</think>y", strip) == ("", "y")
    custom = reasoning_settings(SimpleNamespace(reasoning={"tag_pairs": [{"start": "<r>", "end": "</r>"}]},
                                                reasoning_effort="high"), {})
    assert split_reasoning("<r>a</r>b", custom) == ("a", "b") and custom.effort == "high"
    no_prefill = reasoning_settings(SimpleNamespace(reasoning={"disable_reasoning_tag_prefill": True},
                                                    reasoning_effort=""), {})
    assert open_reasoning("x<think>", no_prefill) is None
    with pytest.raises(RequestError, match="reasoning_effort must be one of"):
        reasoning_settings(SimpleNamespace(reasoning=None, reasoning_effort=""), {"reasoning_effort": "max"})


TEXTS = ["<think>\nplan A\n\nplan B  \n</think>\n\nThe answer is 4.", "plain answer", "a<thi nk>b",
         "<think></think>only content", "x[THINK] y [/THINK] z<think>w", "<think>a</think><think>b</think>c",
         "ends with <thi", "</think> stray end"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("inside", [None, "</think>"])
def test_streaming_equals_the_whole_split_for_random_cuts(text, inside):
    want = split_reasoning(text, ON, inside)
    rng = random.Random(hash(text) & 0xFFFF)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, min(6, len(text) - 1)))) if len(text) > 1 else []
        parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        s = ReasoningSplitter(ON, inside)
        got_r, got_c = "", ""
        for p in parts:
            r, c = s.feed(p)
            got_r, got_c = got_r + r, got_c + c
        r, c = s.finish()
        assert (got_r + r, got_c + c) == want, parts


def test_a_partial_marker_is_held_back_while_streaming():
    s = ReasoningSplitter(ON)
    assert s.feed("Hello <th") == ("", "Hello ")
    assert s.feed("ink>why") == ("why", "")
    assert s.feed("</thi") == ("", "")
    assert s.feed("nk> done") == ("", "done")


def _brute_weight(blocks, spans):
    total = 0.0
    for start, end, w in spans:
        if end <= start:
            total += w if any(a <= start and (b is None or start < b) for a, b in blocks) else 0
        else:
            inside = sum(max(0, min(end, b if b is not None else end) - max(start, a)) for a, b in blocks)
            total += w * inside / (end - start)
    return total


def test_weight_inside_sweeps_to_what_span_by_span_gives():
    # ReasoningSplitter.weight_inside (reasoning tokens) in one sweep equals the plain definition.
    from compat.reasoning import ReasoningSettings

    rng = random.Random(7)
    for _ in range(300):
        s = ReasoningSplitter(ReasoningSettings())
        pos, blocks = 0, []
        for _ in range(rng.randrange(0, 6)):
            a = pos + rng.randrange(0, 5)
            b = a + rng.randrange(1, 8)
            blocks.append((a, b))
            pos = b
        if blocks and rng.random() < 0.3:
            blocks[-1] = (blocks[-1][0], None)
        s.blocks = blocks
        spans, p = [], 0
        for _ in range(rng.randrange(0, 12)):
            q = p + rng.randrange(0, 6)
            spans.append((p, q, rng.randrange(0, 4)))
            p = q
        assert abs(s.weight_inside(spans) - _brute_weight(blocks, spans)) < 1e-9, (blocks, spans)
