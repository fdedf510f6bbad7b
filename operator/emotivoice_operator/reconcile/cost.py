"""The cost of a service's windows in a pass: the counter reads it needs, and whether this
operator process has accounted the service before.

The accounting is tuning/cost.py's (pure); this module brings it the one outside call it needs,
the serving pods' /metrics (tuning/counters.py), only when ``cost.read_due`` says so, and knows
what only the running process can know: that it has been watching the service since its last
pass. A process that has not (it just started) passes ``resumed``, and the span since the
status's ``accountedAt`` is stated as unaccounted rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emotivoice_operator.tuning import cost, counters
from emotivoice_operator.windows.model import Window

Key = tuple[str, str]  # (namespace, service name)


@dataclass(frozen=True)
class CostReading:
    """What a pass brings to ``cost.account`` besides the pods and the status."""

    counters: dict[str, counters.ServerCounters] | None
    resumed: bool
    # When the counters must be read again (None: no window warm, or no pod can be asked).
    next_read: datetime | None = None


@dataclass
class CostReader:
    ask_servers: bool = True
    # Services this process has passed over since it started (the rest are ``resumed``).
    seen: set[Key] = field(default_factory=set)

    def read(
        self,
        key: Key,
        windows: list[Window],
        pods: list[dict[str, Any]],
        previous: Mapping[str, Any] | None,
        now: datetime,
    ) -> CostReading:
        resumed = key not in self.seen
        self.seen.add(key)
        asked = self.ask_servers and counters.readable(pods)
        read = counters.read_all(pods) if asked and cost.read_due(windows, previous, now) else None
        return CostReading(read, resumed, cost.next_read(windows, now) if asked else None)
