"""Reads a `py-spy record --native --threads --format raw` profile and reports the Python share of a decode step."""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

# Native frames look like "llama_decode (libllama.so)"; Python frames like "f (pkg/mod.py:12)".
_PY_FRAME = re.compile(r"\(.*\.py:\d+\)$")
_LLAMA_LIB = re.compile(r"\((libllama|libggml)[^)]*\)$")
# A thread whose innermost frame is one of these blocking calls is waiting, not working (queue
# get, lock, event loop poll, sleep, a blocking read of a pipe or socket).
_WAIT_LEAVES = ("epoll_wait (", "select (", "poll (", "nanosleep (", "clock_nanosleep (",
                "pthread_cond_wait", "pthread_cond_timedwait", "futex", "sem_wait", "sem_timedwait",
                "read (libc", "recv (libc", "recvfrom (libc", "accept (libc", "accept4 (libc", "wait4 (libc",
                "waitpid (libc")
# ...or has one of these just above an unnamed libc frame.
_WAIT_CALLERS = ("PyThread_acquire_lock", "epoll_wait")
DECODE_MARKER = "llama_decode ("
_PROCESS_PREFIX = re.compile(r'(process \d+:".*?");(?=process |thread )', re.DOTALL)

# "gil_wait": the engine thread waits for the GIL another thread holds - Python's cost too.
# "io": inside a write/send system call (handing events to a pipe or socket; long if it is full).
CATEGORIES = ("decode", "native_other", "python", "gil_wait", "io", "waiting")
_IO_LEAVES = ("write (libc", "send (libc", "sendto (libc", "sendmsg (libc", "writev (libc")


@dataclass
class ThreadProfile:
    process: str
    thread: str
    samples: Counter = field(default_factory=Counter)  # category -> samples
    python_leaves: Counter = field(default_factory=Counter)  # innermost Python frame -> samples

    @property
    def is_engine(self) -> bool:
        return self.samples["decode"] > 0

    @property
    def working(self) -> int:
        return sum(self.samples[c] for c in CATEGORIES if c != "waiting")


def classify(frames: list[str]) -> str:
    """Category of one sample's stack (root first, leaf last)."""
    if any(f.startswith(DECODE_MARKER) for f in frames):
        return "decode"
    if any(_LLAMA_LIB.search(f) for f in frames):
        return "native_other"  # sampling, tokenizing, detokenizing, KV edits in C
    if any(f.startswith("take_gil ") for f in frames):
        return "gil_wait"
    leaf = frames[-1] if frames else ""
    if leaf.startswith(_IO_LEAVES):
        return "io"
    if leaf.startswith(_WAIT_LEAVES) or any(m in f for f in frames[-4:] for m in _WAIT_CALLERS):
        return "waiting"
    return "python"


def parse_raw(lines: Iterable[str]) -> dict[tuple[str, str], ThreadProfile]:
    """Raw format: 'process P:"cmd";thread (T): name;root;...;leaf COUNT' (with --threads). With
    --subprocesses a child's lines carry its ancestors first: 'process P;process C;thread ...'."""
    threads: dict[tuple[str, str], ThreadProfile] = {}
    for n_line, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            raise ValueError(f"line {n_line}: no sample count at the end: {line[:80]!r}")
        process = "process ?"
        # A command line may itself hold ";" (python -c "...; spawn_main(...)"), so the process
        # prefixes are matched up to their closing quote, not split.
        while (m := _PROCESS_PREFIX.match(stack)) is not None:
            process, stack = m.group(1), stack[m.end():]  # the innermost process is the one sampled
        frames = stack.split(";")
        thread = frames.pop(0) if frames and frames[0].startswith("thread ") else "thread ?"
        prof = threads.setdefault((process, thread), ThreadProfile(process, thread))
        cat = classify(frames)
        prof.samples[cat] += int(count)
        if cat == "python":
            leaf = next((f for f in reversed(frames) if _PY_FRAME.search(f)), frames[-1] if frames else "?")
            prof.python_leaves[leaf] += int(count)
    return threads


@dataclass
class Share:
    decode: int
    native_other: int
    python: int
    gil_wait: int = 0
    io: int = 0

    @property
    def working(self) -> int:
        return self.decode + self.native_other + self.python + self.gil_wait + self.io

    @property
    def python_share(self) -> Optional[float]:
        return (self.python + self.gil_wait) / self.working if self.working else None


def engine_share(threads: dict[tuple[str, str], ThreadProfile]) -> Share:
    """Summed over the threads that ran llama_decode: the time they spent working."""
    engines = [t for t in threads.values() if t.is_engine]
    return Share(
        decode=sum(t.samples["decode"] for t in engines),
        native_other=sum(t.samples["native_other"] for t in engines),
        python=sum(t.samples["python"] for t in engines),
        gil_wait=sum(t.samples["gil_wait"] for t in engines),
        io=sum(t.samples["io"] for t in engines),
    )


def report(threads: dict[tuple[str, str], ThreadProfile], top: int = 12) -> str:
    out = []
    share = engine_share(threads)
    if share.working == 0:
        return ("No thread ran llama_decode in this profile: was the server under load, and was py-spy "
                "run with --native --threads?")
    out.append(f"Engine thread(s) (those that ran llama_decode), {share.working} working samples:")
    for name, n in (("llama_decode (C)", share.decode), ("other llama.cpp C calls", share.native_other),
                    ("Python", share.python), ("waiting for the GIL", share.gil_wait),
                    ("write/send system calls", share.io)):
        out.append(f"  {name:<26} {n:7d}  {100 * n / share.working:5.1f}%")
    out.append(f"Python share of a step (Python + GIL wait): {100 * share.python_share:.1f}%; "
               f"outside llama_decode: {100 * (1 - share.decode / share.working):.1f}%")
    out.append("")
    out.append("All threads (samples by category):")
    out.append(f"  {'process / thread':<60} " + " ".join(f"{c:>12}" for c in CATEGORIES))
    for t in sorted(threads.values(), key=lambda t: -t.working):
        label = f"{t.process[:28]} / {t.thread[:28]}"
        out.append(f"  {label:<60} " + " ".join(f"{t.samples[c]:12d}" for c in CATEGORIES))
    leaves = Counter()
    for t in threads.values():
        if t.is_engine:
            leaves.update(t.python_leaves)
    if leaves:
        out.append("")
        out.append("Where the engine threads' Python time goes (innermost Python frame):")
        for frame, n in leaves.most_common(top):
            out.append(f"  {n:6d}  {frame}")
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("raw", type=Path, help="py-spy record --native --threads --format raw output")
    p.add_argument("--top", type=int, default=12, help="how many Python frames to list")
    a = p.parse_args(argv)
    try:
        threads = parse_raw(a.raw.read_text(encoding="utf-8", errors="replace").splitlines())
    except (OSError, ValueError) as exc:
        print(f"error: {a.raw}: {exc}", file=sys.stderr)
        return 1
    print(report(threads, a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
