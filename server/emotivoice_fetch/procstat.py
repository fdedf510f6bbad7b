"""When did this process start? The clock for the server's "process start -> ready" and the
instant the fetch step's report gives as its start.

Measured from the kernel's record of the process start, not from when our code first ran, so
the interpreter start-up and imports before `main()` are counted as a user would count them.
Stdlib only, in the fetch package (which the server imports, never the reverse) so both
processes read their start the same way.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def parse_start_ticks(stat_line: str) -> int:
    """Field 22 (starttime, clock ticks since boot) of /proc/PID/stat.

    The command name (field 2) is in parentheses and may itself contain spaces and
    parentheses, so the split starts after the last ')'.
    """
    rest = stat_line[stat_line.rindex(")") + 2 :].split()
    return int(rest[19])  # fields 3.. start at index 0, so field 22 is index 19


def process_start_time(pid: int | None = None) -> float:
    """Epoch seconds at which `pid` (default: this process) started; now() if /proc is absent.

    The process age is uptime minus the start tick (both since boot, 10 ms resolution), so the
    result is as precise as those, unlike /proc/stat's whole-second boot time.
    """
    try:
        pid = pid or os.getpid()
        ticks = parse_start_ticks(Path(f"/proc/{pid}/stat").read_text())
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        now = time.time()
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        return now - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.time()
