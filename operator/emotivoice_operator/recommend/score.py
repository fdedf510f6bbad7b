"""How a floor would have done against a history.

Coverage: the share of the requests (served and refused) that arrived in a minute whose warm
floor was at least ceil(demand) replicas, demand in busy seconds per second at 100%
utilisation (a replica gives at most one busy second per second). Cost: the floor's warm
replica-hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotivoice_operator.recommend.estimate import needed_replicas
from emotivoice_operator.recommend.history import MINUTES_PER_WEEK, History


@dataclass(frozen=True)
class Score:
    coverage: float
    replica_hours: float
    minutes: int

    @property
    def per_week(self) -> float:
        """Replica-hours per 7 days of the history scored."""
        return self.replica_hours * MINUTES_PER_WEEK / self.minutes if self.minutes else 0.0


def score(floor: np.ndarray, history: History) -> Score:
    demand = np.nan_to_num(history.demand)
    enough = floor >= needed_replicas(demand, 1.0)
    weights = history.requests
    total = float(weights.sum())
    coverage = float(weights[enough].sum() / total) if total > 0 else 1.0
    return Score(coverage, float(floor.sum()) / 60, len(floor))
