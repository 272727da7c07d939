"""TextAssembler: UTF-8 holdback, stop strings across pieces, nothing after a stop."""
import random

from server.engine.detok import TextAssembler, partial_stop_overlap


def feed_all(asm, pieces):
    out = [asm.feed(p) for p in pieces]
    return out, out and "".join(out) + (asm.finish() if asm.stopped is None else "")


def test_incomplete_utf8_is_held_until_complete():
    asm = TextAssembler()
    data = "日本é".encode()
    outs = [asm.feed(bytes([b])) for b in data]
    # Nothing is sent mid-character; each character appears whole on its last byte.
    assert outs == ["", "", "日", "", "", "本", "", "é"]


def test_stop_string_split_across_pieces_is_never_sent():
    asm = TextAssembler(["### Human:"])
    outs = [asm.feed(p.encode()) for p in ["Sure.", "\n", "###", " Hu", "man:", " more"]]
    assert "".join(outs) == "Sure.\n"
    assert asm.stopped is not None and asm.stopped.stop == "### Human:"
    # The held-back "###" was never emitted before the stop was known.
    assert outs[2] == "" and outs[3] == ""


def test_partial_stop_released_when_generation_ends_without_it():
    asm = TextAssembler(["</s>"])
    assert asm.feed(b"a </") == "a "
    assert asm.finish() == "</"


def test_earliest_stop_wins():
    asm = TextAssembler(["cd", "bcde"])
    asm.feed(b"abcdef")
    # "bcde" starts at 1, before "cd" at 2.
    assert asm.text == "a"


def test_random_splits_match_whole_text_behaviour():
    rng = random.Random(7)
    stops = ["STOP", "é!", "xx"]
    for _ in range(300):
        text = "".join(rng.choice(["a", "é", "S", "T", "O", "P", "!", "x", " ", "日"]) for _ in range(rng.randint(0, 30)))
        data = text.encode()
        cuts = sorted(rng.sample(range(1, len(data)), k=min(len(data) - 1, rng.randint(0, 6)))) if len(data) > 1 else []
        pieces = [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]
        asm = TextAssembler(stops)
        got = "".join(asm.feed(p) for p in pieces)
        if asm.stopped is None:
            got += asm.finish()
        positions = [text.find(s) for s in stops if s in text]
        want = text[: min(positions)] if positions else text
        assert got == want, (text, pieces)


def test_partial_overlap():
    assert partial_stop_overlap("abc###", "### Human") == 3
    assert partial_stop_overlap("abc", "xyz") == 0


def test_without_stops_pieces_decode_as_one_incremental_decoder_would():
    # Whole characters, split characters, invalid bytes and a character cut at the end: the same
    # text as the stream decoded at once with errors="replace" (the last, incomplete one dropped).
    rng = random.Random(7)
    alphabet = ["a", " b", "é", "日本", "\U0001F600", "\n"]
    for _ in range(200):
        data = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))).encode()
        if rng.random() < 0.3:
            cut = rng.randrange(len(data) + 1)
            data = data[:cut] + b"\xff" + data[cut:]  # never valid UTF-8
        tail = "日".encode()[:2] if rng.random() < 0.3 else b""
        pieces, i = [], 0
        while i < len(data):
            k = rng.randint(1, 4)
            pieces.append(data[i:i + k])
            i += k
        asm = TextAssembler()
        out = "".join(asm.feed(p) for p in pieces + ([tail] if tail else [])) + asm.finish()
        assert out == data.decode("utf-8", errors="replace")
        assert asm.text == out
