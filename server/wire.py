"""The worker pipe's framing: length-prefixed messages, written whole and read as many per wake-up as have come.

multiprocessing's Connection reads a message in two reads (its length, then its body) through
a BytesIO and five Python calls; on the front-end that is once per engine step. Here one read
takes whatever is waiting, and a message split across reads waits in the buffer: the reader
never blocks for the rest of a message, so the same code serves the event loop and a thread.

A message is a pickle, or, where the writer gives one, its plain form: builtin types only,
encoded with marshal, which the reader's `from_plain` turns back into the message. An engine
step's text goes that way: no class to look up by name and rebuild, on a path taken per token
(measured: unpickling a step was a quarter of the front-end's Python per token).
"""
from __future__ import annotations

import marshal
import os
import pickle
import struct
from collections import deque
from typing import Any, Callable

_HEADER = struct.Struct("!QB")  # body length, kind
_PICKLED, _PLAIN = 0, 1
_READ_SIZE = 1 << 16


def write_message(fd: int, msg: Any, plain: Any = None) -> None:
    """Write one message whole (the fd must be blocking: a partial write is resumed, never dropped).
    `plain`: the message as builtin types only, or None; anything marshal refuses in it makes
    the message go as a pickle. Raises OSError (BrokenPipeError) when the other end is gone."""
    kind, body = _PICKLED, b""
    if plain is not None:
        try:
            kind, body = _PLAIN, marshal.dumps(plain)
        except ValueError:  # an object marshal does not know (e.g. logprobs): pickle it all
            kind = _PICKLED
    if kind == _PICKLED:
        body = pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)
    data = memoryview(_HEADER.pack(len(body), kind) + body)
    while data:
        data = data[os.write(fd, data):]


def _unpickled(obj: Any) -> Any:
    return obj


class MessageReader:
    """Decodes the messages coming in on `fd`; `read_available` does one read, `next` blocks for one.
    `from_plain` turns a message's plain form back into the message."""

    def __init__(self, fd: int, from_plain: Callable[[Any], Any] = _unpickled):
        self._fd = fd
        self._from_plain = from_plain
        self._partial = bytearray()
        self._decoded: deque[Any] = deque()

    def read_available(self) -> list[Any]:
        """One read (call it when the fd is readable): the messages it completed, maybe none.
        Raises EOFError when the other end closed."""
        if self._decoded:  # left over from a `next` that read more than one
            out = list(self._decoded)
            self._decoded.clear()
            return out
        return self._read()

    def next(self) -> Any:
        """The next message, reading (blocking) as long as it takes. Raises EOFError at the end."""
        while not self._decoded:
            self._decoded.extend(self._read())
        return self._decoded.popleft()

    def pending(self) -> bool:
        """Whether a decoded message waits (then the fd need not be readable for `next` to return)."""
        return bool(self._decoded)

    def _read(self) -> list[Any]:
        chunk = os.read(self._fd, max(_READ_SIZE, self._missing()))
        if not chunk:
            raise EOFError("the pipe closed")
        if not self._partial:  # the usual case: whole messages, decoded from the read's own bytes
            out, pos = self._decode(chunk)
            if pos < len(chunk):
                self._partial = bytearray(chunk[pos:])
            return out
        self._partial += chunk  # amortized: a long message is not copied once per read
        out, pos = self._decode(self._partial)
        del self._partial[:pos]
        return out

    def _missing(self) -> int:
        """How many bytes the message begun in the buffer still needs (0 if its header is unread)."""
        if len(self._partial) < _HEADER.size:
            return 0
        size, _ = _HEADER.unpack_from(self._partial, 0)
        return _HEADER.size + size - len(self._partial)

    def _decode(self, data: bytes | bytearray) -> tuple[list[Any], int]:
        """The whole messages at the start of `data`, and where the first incomplete one begins."""
        out: list[Any] = []
        pos, end = 0, len(data)
        with memoryview(data) as view:  # released before the caller trims a bytearray
            while end - pos >= _HEADER.size:
                size, kind = _HEADER.unpack_from(data, pos)
                start = pos + _HEADER.size
                if end - start < size:
                    break
                body = view[start:start + size]
                out.append(self._from_plain(marshal.loads(body)) if kind == _PLAIN else pickle.loads(body))
                pos = start + size
        return out, pos
