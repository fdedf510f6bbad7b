"""Five weeks of a service's traffic, as OpenMetrics counters per pod for promtool to backfill,
from a generating schedule the tests know.

The shape (Europe/Berlin wall clock): weekdays 08:00-19:00 need 4 replicas, 11:30-14:00 7,
every evening 19:00-22:00 3, Saturdays 10:00-16:00 2, otherwise 1 (replicas.min). Demand, in
busy seconds per second, is the schedule's replicas x ``UTILISATION`` x a day's level x a
minute's noise (both seeded). The five weeks run from Monday 2027-10-04 to Monday 2027-11-08
local, across the end of summer time (Sunday 2027-10-31, 03:00 CEST -> 02:00 CET). Monday
2027-11-01 (All Saints' Day) is a public holiday in the fifth week: replicas.min's traffic all
day. In the second week the pool was capped at ``CAPPED_REPLICAS``: what it could not serve
was refused (503) and counted. Each pod counts its share: ``emotivoice_model_busy_seconds_total``
and ``emotivoice_speech_requests_total{code}`` with labels namespace, service and pod (the ones
a ServiceMonitor gives); one pod restarts in the third week (its counters start again at 0).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

ZONE = ZoneInfo("Europe/Berlin")
START = datetime(2027, 10, 4, tzinfo=ZONE)  # a Monday, CEST
WEEKS = 5
END = datetime(2027, 11, 8, tzinfo=ZONE)  # a Monday, CET
HOLIDAY = date(2027, 11, 1)
CAPPED_WEEK = 1
CAPPED_REPLICAS = 2
# Busy seconds each replica gives at most, per second, when the pool is capped.
CAPPED_BUSY = 0.95
UTILISATION = 0.45
SECONDS_PER_REQUEST = 2.0
NAMESPACE, SERVICE = "voice", "tts"
PODS = (("tts-a", 0.55), ("tts-b", 0.45))
RESTART_MINUTE = 2 * 7 * 1440 + 3 * 1440 + 600  # the third week's Thursday, about 10:00
SEED = 32

GENERATING_POOL: dict[str, Any] = {
    "timeZone": "Europe/Berlin",
    "windows": [
        {"name": "workday", "days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00",
         "end": "19:00", "leadTime": "10m", "replicas": 4},
        {"name": "lunch", "days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "11:30",
         "end": "14:00", "leadTime": "10m", "replicas": 7},
        {"name": "evening", "start": "19:00", "end": "22:00", "leadTime": "10m", "replicas": 3},
        {"name": "saturday", "days": ["Sat"], "start": "10:00", "end": "16:00",
         "leadTime": "10m", "replicas": 2},
    ],
}  # fmt: skip


def level(local: datetime) -> int:
    """The generating schedule's replicas at a local wall time (no lead)."""
    if local.date() == HOLIDAY:
        return 1
    minute = local.hour * 60 + local.minute
    weekday = local.weekday()
    out = 1
    if weekday < 5 and 8 * 60 <= minute < 19 * 60:
        out = 7 if 11 * 60 + 30 <= minute < 14 * 60 else 4
    if 19 * 60 <= minute < 22 * 60:
        out = max(out, 3)
    if weekday == 5 and 10 * 60 <= minute < 16 * 60:
        out = max(out, 2)
    return out


def manifest(pool: dict[str, Any] | None = None, *, dates: list[dict] | None = None) -> dict:
    """The EmotiVoiceService whose traffic this is (its warmPool the generating one)."""
    pool = copy.deepcopy(GENERATING_POOL if pool is None else pool)
    if dates:
        pool["dates"] = dates
    return {
        "apiVersion": "tts.emotivoice.io/v1alpha1",
        "kind": "EmotiVoiceService",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "model": {"source": {"uri": "s3://models/emotivoice/v1"}, "cache": {"size": "8Gi"}},
            "replicas": {"min": 1, "max": 10},
            "warmPool": pool,
        },
    }


@dataclass(frozen=True)
class Traffic:
    """Per minute from ``start_s``: the demand (busy seconds per second) and what was served."""

    start_s: int
    demand: np.ndarray
    served: np.ndarray

    @property
    def end_s(self) -> int:
        return self.start_s + 60 * len(self.demand)


def generate(weeks: int = WEEKS) -> Traffic:
    rng = np.random.default_rng(SEED)
    start_s = int(START.timestamp())
    minutes = int((END.timestamp() - start_s) // 60) if weeks == WEEKS else weeks * 7 * 1440
    levels = np.empty(minutes)
    days = np.empty(minutes, dtype=np.int64)
    for i in range(minutes):
        local = datetime.fromtimestamp(start_s + 60 * i, UTC).astimezone(ZONE)
        levels[i] = level(local)
        days[i] = local.date().toordinal()
    day_factor = rng.normal(1.0, 0.04, size=days.max() - days.min() + 1)[days - days.min()]
    demand = levels * UTILISATION * day_factor * rng.lognormal(0.0, 0.07, size=minutes)
    served = demand.copy()
    capped = slice(CAPPED_WEEK * 7 * 1440, (CAPPED_WEEK + 1) * 7 * 1440)
    served[capped] = np.minimum(demand[capped], CAPPED_REPLICAS * CAPPED_BUSY)
    return Traffic(start_s, demand, served)


def openmetrics(traffic: Traffic) -> str:
    """The counters, one sample a minute per series (at the end of each minute), as text."""
    refused = traffic.demand - traffic.served
    out: list[str] = []
    families = (
        ("emotivoice_model_busy_seconds", [("", traffic.served * 60)]),
        (
            "emotivoice_speech_requests",
            [
                ('code="200",', traffic.served * 60 / SECONDS_PER_REQUEST),
                ('code="503",', refused * 60 / SECONDS_PER_REQUEST),
            ],
        ),
    )
    stamps = traffic.start_s + 60 * np.arange(len(traffic.demand) + 1)
    for family, series in families:
        out.append(f"# TYPE {family} counter")
        for extra, per_minute in series:
            for pod, share in PODS:
                counts = np.concatenate([[0.0], per_minute * share])
                if pod == PODS[1][0]:
                    counts[RESTART_MINUTE + 1] = 0.0
                    total = np.cumsum(counts)
                    total[RESTART_MINUTE + 1 :] -= total[RESTART_MINUTE + 1]
                else:
                    total = np.cumsum(counts)
                labels = f'{{{extra}namespace="{NAMESPACE}",service="{SERVICE}",pod="{pod}"}}'
                name = f"{family}_total{labels}"
                out.extend(f"{name} {v:.3f} {t}" for v, t in zip(total, stamps, strict=True))
    out.append("# EOF")
    return "\n".join(out) + "\n"


def end_instant() -> datetime:
    return END.astimezone(UTC)


def held_out_week() -> tuple[datetime, datetime]:
    return (END - timedelta(days=7)).astimezone(UTC), END.astimezone(UTC)
