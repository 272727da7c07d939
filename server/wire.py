"""The worker pipe's framing: length-prefixed pickles, written whole and read as many per wake-up as have come.

multiprocessing's Connection reads a message in two reads (its length, then its body) through
a BytesIO and five Python calls; on the front-end that is once per engine step. Here one read
takes whatever is waiting, and a message split across reads waits in the buffer: the reader
never blocks for the rest of a message, so the same code serves the event loop and a thread.
"""
from __future__ import annotations

import os
import pickle
import struct
from collections import deque
from typing import Any

_LENGTH = struct.Struct("!Q")
_READ_SIZE = 1 << 16


def write_message(fd: int, msg: Any) -> None:
    """Write one message whole (the fd must be blocking: a partial write is resumed, never dropped).
    Raises OSError (BrokenPipeError) when the other end is gone."""
    body = pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)
    data = memoryview(_LENGTH.pack(len(body)) + body)
    while data:
        data = data[os.write(fd, data):]


class MessageReader:
    """Decodes the messages coming in on `fd`; `read_available` does one read, `next` blocks for one."""

    def __init__(self, fd: int):
        self._fd = fd
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
            out, pos = _decode(chunk)
            if pos < len(chunk):
                self._partial = bytearray(chunk[pos:])
            return out
        self._partial += chunk  # amortized: a long message is not copied once per read
        out, pos = _decode(self._partial)
        del self._partial[:pos]
        return out

    def _missing(self) -> int:
        """How many bytes the message begun in the buffer still needs (0 if its length is unread)."""
        if len(self._partial) < _LENGTH.size:
            return 0
        (size,) = _LENGTH.unpack_from(self._partial, 0)
        return _LENGTH.size + size - len(self._partial)


def _decode(data: bytes | bytearray) -> tuple[list[Any], int]:
    """The whole messages at the start of `data`, and where the first incomplete one begins."""
    out: list[Any] = []
    pos, end = 0, len(data)
    with memoryview(data) as view:  # released before the caller trims a bytearray
        while end - pos >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(data, pos)
            start = pos + _LENGTH.size
            if end - start < size:
                break
            out.append(pickle.loads(view[start:start + size]))
            pos = start + size
    return out, pos
