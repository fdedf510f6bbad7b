"""How busy the CPUs are, so that the scheduler knows whether a slow stream is slow because of
its connection (more connections help) or because there is no CPU left for hashing and copying
(more connections only add read-back work).

It measures this process against the CPUs it may use (a pod's CPU limit caps it long before
the node is busy). The whole machine's load is deliberately not used: on a shared node other
pods' work would then stop the splits that a per-connection-limited store needs."""

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


class CpuGauge:
    """This process's share of its usable CPUs since the previous reading, 0.0 .. 1.0."""

    def __init__(
        self,
        cpus: float | None = None,
        process_time: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cpus = cpus if cpus is not None else usable_cpus()
        self._process_time = process_time
        self._clock = clock
        self._last = (clock(), process_time())
        self._busy = 0.0

    def busy(self) -> float:
        """The last value for windows under MIN_WINDOW_S, so frequent callers read no noise."""
        now, used = self._clock(), self._process_time()
        elapsed = now - self._last[0]
        if elapsed >= MIN_WINDOW_S:
            self._busy = (used - self._last[1]) / elapsed / self.cpus
            self._last = (now, used)
        return self._busy
