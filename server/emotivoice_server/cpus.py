"""How many CPUs this process may really use: the container's quota, not the node's core count.

PyTorch sizes its intra-op thread pool from the cores it sees; in a pod limited to 2 CPUs on a
64-core node that is 64 threads fighting over 2 CPUs' worth of time (throttled, spinning). The
model runs with as many threads as the cgroup quota and the CPU affinity allow.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max` ("QUOTA PERIOD" or "max PERIOD") -> CPUs, None when unlimited."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1])
    return quota / period if period > 0 else None


def cpu_budget(cpu_max_file: Path = CGROUP_CPU_MAX) -> int:
    """Whole CPUs available: min(affinity, quota rounded up), at least 1."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    try:
        quota = parse_cpu_max(cpu_max_file.read_text())
    except (OSError, ValueError):
        quota = None
    if quota is not None:
        available = min(available, math.ceil(quota))
    return max(1, available)
