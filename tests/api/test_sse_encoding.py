"""Our one-pass SSE encoder writes the bytes sse-starlette's ServerSentEvent would (the library the stream rides on)."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from sse_starlette.event import ServerSentEvent

from server.api.streaming import SSE_DONE, sse_event, sse_json


def library(data: str, event: str | None = None) -> bytes:
    return ServerSentEvent(data, event=event, sep="\n").encode()


def test_a_json_chunk_is_one_data_line():
    assert sse_json({"a": "é\n"}) == b'data: {"a":"\xc3\xa9\\n"}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"


def test_named_event_and_multi_line_text_match_the_library():
    assert sse_event("x", "response.created") == library("x", "response.created")
    assert sse_event("one\r\ntwo\rthree\nfour") == library("one\r\ntwo\rthree\nfour")
    assert sse_event("", "ev\nil") == library("", "ev\nil")


@settings(max_examples=300, deadline=None)
@given(st.text(), st.one_of(st.none(), st.text()))
def test_any_text_matches_the_library(data, event):
    assert sse_event(data, event) == library(data, event)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3),
                    max_leaves=8))
def test_json_matches_the_library(obj):
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    assert sse_json(obj) == library(text)
