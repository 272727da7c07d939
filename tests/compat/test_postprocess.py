"""Tests for compat.postprocess: LocalAI's Finetune rules and the streaming counterpart."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from compat.gotemplate.goregex import GoRegexError
from compat.postprocess import (
    StreamPostprocessor,
    compile_go_regex,
    postprocess_reply,
    validate_postprocess,
)


def cfg(cutstrings=(), extract_regex=(), trimspace=(), trimsuffix=()):
    return SimpleNamespace(cutstrings=list(cutstrings), extract_regex=list(extract_regex),
                           trimspace=list(trimspace), trimsuffix=list(trimsuffix))


def test_cutstrings_remove_all_matches():
    assert postprocess_reply(cfg(cutstrings=[r"<\|im_end\|>"]), "a<|im_end|>b<|im_end|>") == "ab"


def test_unescaped_pipes_are_alternation_like_go():
    # "<|im_end|>" is the regex  "<" | "im_end" | ">"  in Go too.
    assert postprocess_reply(cfg(cutstrings=["<|im_end|>"]), "x<|im_end|>") == "x||"


def test_extract_regex_concatenates_first_matches():
    c = cfg(extract_regex=[r"<a>.*?</a>", r"\d+"])
    assert postprocess_reply(c, "zz <a>1</a> 42 <a>2</a>") == "<a>1</a>1"
    assert postprocess_reply(c, "nothing") == "nothing"


def test_trimspace_and_trimsuffix_order():
    c = cfg(trimspace=["Answer:"], trimsuffix=["</s>"])
    assert postprocess_reply(c, "Answer:  hi </s>  ") == "hi"
    # TrimPrefix happens before the space trim of the same step.
    assert postprocess_reply(c, "  Answer: hi") == "Answer: hi"


def test_go_trimspace_set_not_python_strip():
    c = cfg(trimspace=[""])
    assert postprocess_reply(c, "\x1cx\u00a0\u3000") == "\x1cx"


def test_dollar_is_end_of_text_in_go():
    assert postprocess_reply(cfg(cutstrings=["a$"]), "a\n") == "a\n"
    assert postprocess_reply(cfg(cutstrings=["(?m)a$"]), "a\n") == "\n"
    assert postprocess_reply(cfg(cutstrings=[r"a\z"]), "ba") == "b"


def test_go_s_class_excludes_vertical_tab():
    assert postprocess_reply(cfg(cutstrings=[r"\s"]), "a\vb c") == "a\vbc"


def test_posix_class_and_quote():
    assert postprocess_reply(cfg(cutstrings=["[[:digit:]]+"]), "a12b3") == "ab"
    assert postprocess_reply(cfg(cutstrings=[r"\Q.*\E"]), "x.*y") == "xy"


@pytest.mark.parametrize("bad", [r"(?=x)", r"(a)\1", r"\p{Greek}", r"a\Z", "[a"])
def test_rejected_patterns(bad):
    with pytest.raises(GoRegexError):
        compile_go_regex(bad)
    [(key, index, error)] = validate_postprocess(cfg(cutstrings=["ok", bad]))
    assert (key, index) == ("cutstrings", 1)
    assert str(error).startswith("error parsing regexp: ")


def test_go_named_groups_and_unicode_classes():
    assert postprocess_reply(cfg(extract_regex=["(?<n>a)b"]), "xaby") == "ab"
    assert postprocess_reply(cfg(cutstrings=[r"\pL+"]), "héllo, wörld") == ", "


def test_empty_matches_do_not_eat_text():
    assert postprocess_reply(cfg(cutstrings=["x*"]), "axxb") == "ab"
    assert postprocess_reply(cfg(cutstrings=["|ab"]), "ab") == "ab"  # empty alternative wins at each position


CONFIGS = [
    cfg(),
    cfg(cutstrings=[r"<\|im_end\|>"]),
    cfg(cutstrings=["</s>", r"\[/INST\]"]),
    cfg(cutstrings=[r"\bab\b"]),
    cfg(cutstrings=["a$", "^b"]),
    cfg(cutstrings=["(?m)^b", "x?"]),
    cfg(cutstrings=["ab|a"]),
    cfg(cutstrings=["a.*b"]),  # unbounded: held to the end
    cfg(cutstrings=[r"\s+"]),
    cfg(extract_regex=["b+"]),
    cfg(trimspace=[""]),
    cfg(trimspace=["ab", " b"]),
    cfg(trimsuffix=["</s>"]),
    cfg(trimsuffix=["a", "b "]),
    cfg(trimspace=["a"], trimsuffix=["b"]),
    cfg(cutstrings=["c"], trimspace=["a"], trimsuffix=["</s>", "b"]),
    cfg(cutstrings=["[ab]{2}"], trimsuffix=[" "]),
]

ALPHABET = ["a", "b", "c", " ", "\n", "<", "/", "s", ">", "x", "\u00a0", "</s>", "ab"]


def random_splits(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, max(0, len(text) - 1)))) if len(text) > 1 else []
    bounds = [0, *cuts, len(text)]
    parts = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    # empty deltas happen in real streams too
    if rng.random() < 0.3:
        parts.insert(rng.randint(0, len(parts)), "")
    return parts


@pytest.mark.parametrize("ci", range(len(CONFIGS)))
def test_stream_equals_batch_for_random_splits(ci):
    c = CONFIGS[ci]
    rng = random.Random(1000 + ci)
    for _ in range(400):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))
        want = postprocess_reply(c, text)
        for _ in range(4):
            parts = random_splits(text, rng)
            f = StreamPostprocessor(c)
            got = "".join(f.feed(p) for p in parts) + f.finish()
            assert got == want, (text, parts)


def test_stream_releases_text_early_when_decidable():
    f = StreamPostprocessor(cfg(cutstrings=["</s>"], trimsuffix=["</s>"]))
    out = f.feed("Hello world, this is ")
    assert out.startswith("Hello world")
    out += f.feed("fine</s>  ")
    out += f.finish()
    assert out == "Hello world, this is fine"


def test_stream_holds_everything_for_extract_regex():
    f = StreamPostprocessor(cfg(extract_regex=["b+"]))
    assert f.feed("aabbba") == ""
    assert f.finish() == "bbb"


PATTERNS = ["</s>", r"<\|im_end\|>", "a", "ab", "b?", r"\bx", "x$", "^a", "(?m)^b", "[ab]c", r"\s\s",
            "a|ab", "c{2}", "(?i)AB", "[[:space:]]", r"\z", "ab*", ".+c"]
PREFIXES = ["", "a", " a", "ab", "</s>", "\n"]
SUFFIXES = ["", "b", "</s>", " s>", "a\n"]


def test_stream_equals_batch_for_random_configs():
    rng = random.Random(7)
    alphabet = ALPHABET + ["\u3000", "\t", "A", "B", "é"]
    for _ in range(250):
        c = cfg(cutstrings=rng.sample(PATTERNS, k=rng.randint(0, 2)),
                extract_regex=rng.sample(PATTERNS, k=1) if rng.random() < 0.15 else [],
                trimspace=rng.sample(PREFIXES, k=rng.randint(0, 2)),
                trimsuffix=rng.sample(SUFFIXES, k=rng.randint(0, 2)))
        for _ in range(12):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
            want = postprocess_reply(c, text)
            parts = random_splits(text, rng)
            f = StreamPostprocessor(c)
            got = "".join(f.feed(p) for p in parts) + f.finish()
            assert got == want, (c, text, parts)


def test_long_stream_releases_most_text_before_finish():
    c = cfg(cutstrings=[r"<\|im_end\|>"], trimspace=[""], trimsuffix=["</s>"])
    f = StreamPostprocessor(c)
    released = "".join(f.feed(w + " ") for w in ["word"] * 500)
    assert len(released) > 2400
    assert released + f.finish() == postprocess_reply(c, "word " * 500)
