"""Reading one counter out of a server's Prometheus text exposition. Pure.

The operator reads two of its servers' counters itself (answered requests for the fallback's
wake, model busy seconds for a window's cost) rather than through Prometheus, which a cluster
may not run; both are sums over every label set of one metric name.
"""

from __future__ import annotations

import re
from functools import cache

_NUMBER = r"([0-9.eE+-]+|NaN|[+-]?Inf)"


@cache
def _sample(name: str) -> re.Pattern[str]:
    return re.compile(r"^" + re.escape(name) + r"(\{[^}]*\})?\s+" + _NUMBER)


def counter_sum(metrics_text: str, name: str) -> float:
    """The sum of ``name``'s samples over all their labels (0 when there are none); samples that
    are not finite numbers are left out."""
    total = 0.0
    pattern = _sample(name)
    for line in metrics_text.splitlines():
        match = pattern.match(line)
        if match:
            try:
                value = float(match.group(2))
            except ValueError:
                continue
            if value == value and abs(value) != float("inf"):
                total += value
    return total
