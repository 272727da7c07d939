"""Memory and CPU use of a process, read from Linux's /proc (what LocalAI's /backend/monitor reports via gopsutil)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_STATUS_KEYS = {"VmRSS": "rss", "VmSize": "vms", "VmHWM": "hwm", "VmData": "data", "VmStk": "stack",
                "VmLck": "locked", "VmSwap": "swap"}


@dataclass(frozen=True)
class ProcessUsage:
    memory: dict[str, int]  # bytes: rss, vms, hwm, data, stack, locked, swap
    memory_percent: float  # rss as a share of the machine's memory
    cpu_percent: float  # CPU time over the process's lifetime (gopsutil's Percent(0))


def process_usage(pid: int) -> ProcessUsage | None:
    """None where /proc cannot tell (another OS, or the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        meminfo = Path("/proc/meminfo").read_text()
    except (OSError, ValueError, IndexError):
        return None
    memory = {name: 0 for name in _STATUS_KEYS.values()}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in _STATUS_KEYS:
            memory[_STATUS_KEYS[key]] = int(value.split()[0]) * 1024
    total = 0
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) * 1024
    # The command may hold spaces and parentheses: fields are counted after its closing one.
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_seconds = (int(fields[11]) + int(fields[12])) / ticks
    alive_seconds = uptime - int(fields[19]) / ticks
    return ProcessUsage(
        memory=memory,
        memory_percent=100.0 * memory["rss"] / total if total else 0.0,
        cpu_percent=100.0 * cpu_seconds / alive_seconds if alive_seconds > 0 else 0.0,
    )
