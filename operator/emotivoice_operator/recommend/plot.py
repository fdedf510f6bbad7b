"""The recommendation over one week (the last of the history): the replicas the traffic needed
(at 100% and at the target utilisation), today's floor and the proposed one (the backtest's,
proposed without that week, when there is one). matplotlib (Agg) is imported only here; each
line carries a gid so tests check the figure's content rather than its pixels."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from emotivoice_operator.preview.plot import DPI, PlotUnavailableError
from emotivoice_operator.recommend.estimate import needed_replicas
from emotivoice_operator.recommend.history import MINUTES_PER_WEEK
from emotivoice_operator.recommend.recommendation import Options, Recommendation

GID_NEEDED = "needed"
GID_NEEDED_TARGET = "needed-at-target"
GID_TODAY = "today"
GID_PROPOSED = "proposed"


def save(r: Recommendation, options: Options, path: Path, title: str) -> Path:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import DateFormatter
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailableError(
            "--plot needs matplotlib, which is not installed here: install the 'preview' extra "
            "(pip install 'emotivoice-warm-operator[preview]'), or leave out --plot"
        ) from exc
    h = r.history
    first = max(0, h.minutes - MINUTES_PER_WEEK)
    week = h.window(first, h.minutes)
    proposed = r.backtest.floor if r.backtest is not None else r.proposal.floor[first:]
    label = "proposed (from the earlier weeks)" if r.backtest is not None else "proposed"
    zone = h.zone
    x = [datetime.fromtimestamp(week.start_s + 60 * i, zone) for i in range(week.minutes)]
    demand = np.nan_to_num(week.demand)
    fig = Figure(figsize=(14, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(x, demand, color="0.75", lw=0.6, label="busy seconds per second", gid="demand")
    ax.step(x, needed_replicas(demand, 1.0), where="post", color="0.45", lw=0.8,
            label="replicas needed at 100%", gid=GID_NEEDED)  # fmt: skip
    ax.step(x, needed_replicas(demand, options.target), where="post", color="tab:orange",
            lw=0.8, label=f"replicas needed at {options.target:.0%}",
            gid=GID_NEEDED_TARGET)  # fmt: skip
    ax.step(x, r.today_floor[first:], where="post", color="tab:blue", lw=1.6,
            label="today's floor", gid=GID_TODAY)  # fmt: skip
    ax.step(x, proposed, where="post", color="tab:green", lw=1.6, label=label,
            gid=GID_PROPOSED)  # fmt: skip
    ax.xaxis.set_major_formatter(DateFormatter("%a %d %b", tz=zone))
    ax.set_ylabel("replicas")
    ax.set_title(f"{title}: the last week ({zone.key})")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path
