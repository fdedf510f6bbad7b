"""How busy the CPUs are, so that the scheduler knows whether a slow stream is slow because of
its connection (more connections help) or because there is no CPU left for hashing and copying
(more connections only add read-back work).

Two views, the busier one counts: this process against the CPUs it may use (a pod's CPU limit
caps it long before the node is busy), and the whole machine from /proc/stat (on a small node
the object store or a neighbour may hold the other cores)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

MIN_WINDOW_S = 0.1


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> float:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU limit if one is set
    (a pod's `resources.limits.cpu`), which the affinity alone does not show."""
    cpus = float(len(os.sched_getaffinity(0)))
    with contextlib.suppress(OSError, ValueError):
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(int(quota) / int(period), 0.1))
    return cpus


def machine_ticks(stat: Path = Path("/proc/stat")) -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far; (0, 0) where unknown."""
    try:
        fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = sum(fields[3:5])  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


class CpuGauge:
    """How busy the CPUs were since the previous reading, 0.0 (idle) .. 1.0 (saturated)."""

    def __init__(
        self,
        cpus: float | None = None,
        process_time: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        ticks: Callable[[], tuple[int, int]] = machine_ticks,
    ) -> None:
        self.cpus = cpus if cpus is not None else usable_cpus()
        self._process_time = process_time
        self._clock = clock
        self._ticks = ticks
        self._last = (clock(), process_time(), *ticks())
        self._busy = 0.0

    def busy(self) -> float:
        """The busier of this process's share and the machine's; the last value for windows
        under MIN_WINDOW_S, so that frequent callers do not read noise."""
        now, used, (busy, total) = self._clock(), self._process_time(), self._ticks()
        elapsed = now - self._last[0]
        if elapsed >= MIN_WINDOW_S:
            mine = (used - self._last[1]) / elapsed / self.cpus
            ticks = total - self._last[3]
            machine = (busy - self._last[2]) / ticks if ticks > 0 else 0.0
            self._busy = max(mine, machine)
            self._last = (now, used, busy, total)
        return self._busy
