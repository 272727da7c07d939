"""server.wire: messages come out whole and in order however the bytes are split across reads."""
from __future__ import annotations

import os
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.wire import MessageReader, write_message

messages = st.lists(
    st.one_of(st.integers(), st.text(max_size=50), st.binary(max_size=300_000),
              st.tuples(st.integers(), st.text(max_size=10))),
    min_size=1, max_size=8,
)


def _pair():
    a, b = socket.socketpair()
    return a, b


@settings(max_examples=40, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(min_value=1, max_value=70_000), max_size=20))
def test_messages_split_anywhere_come_out_whole_and_in_order(msgs, cuts):
    # Encode through a socket once, then replay the bytes to the reader in arbitrary pieces.
    a, b = _pair()
    with a, b:
        wire = bytearray()
        writer = threading.Thread(target=lambda: [write_message(a.fileno(), m) for m in msgs] and a.close())
        writer.start()
        while chunk := b.recv(1 << 20):
            wire += chunk
        writer.join()
    r, w = os.pipe()
    try:
        reader = MessageReader(r)
        got, pos = [], 0
        sizes = iter(cuts)
        while pos < len(wire):
            n = next(sizes, len(wire) - pos)
            os.write(w, bytes(wire[pos:pos + n]))
            pos += n
            got.extend(reader.read_available())
    finally:
        os.close(r)
        os.close(w)
    assert got == msgs


def test_a_message_bigger_than_the_socket_buffer_arrives_intact():
    a, b = _pair()
    big = "x" * 5_000_000
    with a, b:
        t = threading.Thread(target=write_message, args=(a.fileno(), big))
        t.start()  # blocks until the reader has taken the rest
        assert MessageReader(b.fileno()).next() == big
        t.join()


def test_next_keeps_what_one_read_brought_beyond_the_first_message():
    a, b = _pair()
    with a, b:
        for m in ("one", "two", "three"):
            write_message(a.fileno(), m)
        reader = MessageReader(b.fileno())
        assert reader.next() == "one"
        assert reader.pending()
        assert reader.read_available() == ["two", "three"]
        assert not reader.pending()


def test_the_end_of_the_pipe_is_eoferror():
    a, b = _pair()
    reader = MessageReader(b.fileno())
    write_message(a.fileno(), 1)
    a.close()
    with b:
        assert reader.next() == 1
        with pytest.raises(EOFError):
            reader.next()


def test_writing_to_a_closed_pipe_is_an_oserror():
    a, b = _pair()
    b.close()
    with a, pytest.raises(OSError):
        for _ in range(100):  # the first write may still be buffered
            write_message(a.fileno(), "x" * 100_000)


def test_engine_steps_travel_in_plain_form_and_come_back_equal():
    from server.engine.messages import StepEvents, StepStats
    from server.engine.types import Finished, TokenLogprob, Usage

    text_only = StepEvents([(1, "Hel"), (2, "lo", (), 3)], [], StepStats(2, 1, 40, 100, 7))
    with_end = StepEvents([(1, "!")], [(1, Finished("stop", Usage(3, 4, 0)))], StepStats(1, 0, 41, 100, 8))
    with_logprobs = StepEvents([(3, "a", (TokenLogprob("a", b"a", -0.5, ()),), 1)], [], StepStats())
    sent = [text_only, with_end, with_logprobs, "a command"]
    plain_given = []
    a, b = _pair()
    with a, b:
        for m in sent:
            plain = m.plain() if isinstance(m, StepEvents) else None
            plain_given.append(plain is not None)
            write_message(a.fileno(), m, plain)
        reader = MessageReader(b.fileno(), from_plain=StepEvents.from_plain)
        got = [reader.next() for _ in sent]
    # Only the step that ends no request has a plain form; the one whose logprobs marshal
    # refuses goes as a pickle; all four arrive equal, in order.
    assert plain_given == [True, False, True, False]
    assert got == sent
    assert [ev for _, ev in got[0].events()] == [ev for _, ev in text_only.events()]


def test_a_plain_message_is_read_back_by_the_readers_own_function():
    a, b = _pair()
    with a, b:
        write_message(a.fileno(), object(), plain=(1, ["x"]))
        assert MessageReader(b.fileno(), from_plain=lambda data: ("rebuilt", data)).next() == ("rebuilt", (1, ["x"]))
