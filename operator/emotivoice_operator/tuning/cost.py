"""The cost of a schedule: per window, the warm replica-seconds it held against what they bought.
Pure: the caller passes the windows, the server pods, what the serving pods' counters read (or
None when they were not read) and the previous ``status.cost``.

Accounted over each occurrence's warm span ``[start - lead, end)``:

- warm replica-seconds: the integral of the server pods Ready (and not leaving) over the span.
  Between two passes the count is piecewise constant: a pass comes at every pod Ready change
  (the pods' watch) and at every window edge (reconcile/edges.py). A pod Ready now counts from
  its Ready transition, or from the previous pass if that is later; a pod Ready at the previous
  pass and gone now counts until now (its pass came at the watch event, seconds late at most);
- served replica-seconds: the increase of the servers' ``emotivoice_model_busy_seconds_total``
  (wall seconds the model thread spent), summed over pods by uid: a pod first read after it
  turned Ready counts from 0 (it is new, or restarted), a counter that fell restarted in place
  and counts from 0; a pod that was Ready but not read at the previous read is a baseline only;
- lead requests: the increase of ``emotivoice_speech_requests_total`` (all codes) while the
  window was in its lead ``[start - lead, start)``: requests that met replicas the lead brought
  up, each one a cold start its user did not wait for (where ``replicas.min`` is above 0 some of
  them would have met a warm replica anyway);
- cold starts suffered: the cold starts ``coldstarts.account`` counts as ``inWindow`` (created or
  Ready while an occurrence proper was open), given to the window open at that instant.

Counters are read (reconcile/cost.py) at most once per ``POLL_SECONDS`` while a window is warm
and at its edges (``read_due``); a read's increase is spread over ``[last read, now)`` in
proportion to time, and the share that fell outside warm spans is dropped. A read more than
``READ_GAP`` after the previous one only sets the baseline: its increase cannot be placed.

Overlapping windows: every instant is given to one window, the warm one with the most replicas
(the first in spec order on a tie), the window whose floor holds then, so the windows' figures
add up without counting an hour twice; a window warm only inside a larger one accounts nothing.

Outside warm spans the status is left as it is (a pass writes nothing for it) unless the
number of Ready pods changed: ``ready`` must hold at ``accountedAt`` for the next warm span.

Operator restarts: the first pass of a process (``resumed``) cannot know what the pods did
while no operator watched, so the warm part of ``[accountedAt, now)`` is added to
``unaccountedSeconds`` (window-seconds, not replica-seconds) and the counters' increase over it
is dropped; the totals carry on from status.

``status.cost`` (documented in the CRD's status schema): ``since`` (accounting began),
``accountedAt``, ``ready`` (the pods counted Ready at ``accountedAt``), ``counters`` {``readAt``,
``pods`` {uid: {``busySeconds``, ``requests``}}} (the last read, at most ``counters.MAX_PODS``
pods), ``windows`` {name: totals + ``last`` (the latest occurrence: ``start``, ``end`` and its
own figures)}; totals are ``occurrences``, ``warmReplicaSeconds``, ``servedReplicaSeconds``,
``leadRequests``, ``coldStarts``, ``unaccountedSeconds``. Windows no longer in the spec are
removed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emotivoice_operator.tuning.coldstarts import ColdStart, stamp
from emotivoice_operator.tuning.counters import ServerCounters, ready_pods
from emotivoice_operator.tuning.phases import instant, ready_at
from emotivoice_operator.windows.clock import to_utc
from emotivoice_operator.windows.model import Window
from emotivoice_operator.windows.schedule import occurrences

POLL_SECONDS = 60
READ_GAP = timedelta(seconds=3 * POLL_SECONDS)
# Slack in days when listing occurrences around an interval (duration, lead, DST).
_SLACK_DAYS = 2
FIGURES = (
    "warmReplicaSeconds",
    "servedReplicaSeconds",
    "leadRequests",
    "coldStarts",
    "unaccountedSeconds",
)


@dataclass(frozen=True)
class Piece:
    """A stretch of time over which one window (or none) is the one warm, in one phase."""

    start: datetime
    end: datetime
    window: str | None = None
    occurrence: tuple[datetime, datetime] | None = None
    lead: bool = False

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class Amounts:
    """What one pass added to one window (the metrics count these)."""

    warm: float = 0.0
    served: float = 0.0
    lead_requests: float = 0.0
    cold_starts: int = 0
    unaccounted: float = 0.0

    def figures(self) -> dict[str, float]:
        return dict(
            zip(
                FIGURES,
                (self.warm, self.served, self.lead_requests, self.cold_starts, self.unaccounted),
                strict=True,
            )
        )


@dataclass
class CostReport:
    """The new ``status.cost`` (None markers remove keys under the status merge patch) and
    what this pass added per window."""

    status: dict[str, Any]
    added: dict[str, Amounts] = field(default_factory=dict)


def _spans(w: Window, t0: datetime, t1: datetime) -> list[tuple[datetime, datetime]]:
    """The window's occurrences (start, end) whose warm span may meet ``[t0, t1]``."""
    first = t0.astimezone(w.zone).date() - timedelta(days=w.duration.days + _SLACK_DAYS)
    last = t1.astimezone(w.zone).date() + timedelta(days=_SLACK_DAYS)
    return [(s, e) for s, e in occurrences(w, first, last) if s - w.lead <= t1 and e >= t0]


def _owner(
    windows: list[Window], spans: dict[str, list[tuple[datetime, datetime]]], t: datetime,
    proper: bool = False,
) -> tuple[Window, tuple[datetime, datetime]] | None:  # fmt: skip
    """The window ``t`` is given to: the warm one (open, with ``proper``) with the most
    replicas, the first in spec order on a tie; and its occurrence (the latest started)."""
    best: tuple[Window, tuple[datetime, datetime]] | None = None
    for w in windows:
        lead = timedelta(0) if proper else w.lead
        containing = [(s, e) for s, e in spans[w.name] if s - lead <= t < e]
        if containing and (best is None or w.replicas > best[0].replicas):
            best = (w, max(containing))
    return best


def pieces(windows: list[Window], t0: datetime, t1: datetime) -> list[Piece]:
    """``[t0, t1)`` cut at every window edge, each piece given to its window (or none)."""
    t0, t1 = to_utc(t0), to_utc(t1)
    if t1 <= t0:
        return []
    spans = {w.name: _spans(w, t0, t1) for w in windows}
    cuts = {t0, t1}
    for w in windows:
        for s, e in spans[w.name]:
            cuts |= {t for t in (s - w.lead, s, e) if t0 < t < t1}
    ordered = sorted(cuts)
    out = []
    for a, b in itertools.pairwise(ordered):
        owner = _owner(windows, spans, a)
        if owner is None:
            out.append(Piece(a, b))
        else:
            w, occ = owner
            out.append(Piece(a, b, w.name, occ, lead=a < occ[0]))
    return out


def warm_now(windows: list[Window], now: datetime) -> bool:
    now = to_utc(now)
    return _owner(windows, {w.name: _spans(w, now, now) for w in windows}, now) is not None


def read_due(windows: list[Window], previous: Mapping[str, Any] | None, now: datetime) -> bool:
    """Whether this pass reads the serving pods' counters: while a window is warm, or its warm
    span ended since the last read, at most once per ``POLL_SECONDS`` unless a window edge
    passed since the last read (so the lead's requests are read at its start and end)."""
    now = to_utc(now)
    read_at = instant(((previous or {}).get("counters") or {}).get("readAt"))
    warm = warm_now(windows, now)
    if read_at is None or read_at >= now:
        return warm
    since = pieces(windows, read_at, now)
    if not (warm or any(p.window for p in since)):
        return False
    if now - read_at >= timedelta(seconds=POLL_SECONDS):
        return True
    now_piece = pieces(windows, now, now + timedelta(seconds=1))[0]
    states = {(p.window, p.occurrence, p.lead) for p in [*since, now_piece]}
    return len(states) > 1


def next_read(windows: list[Window], now: datetime) -> datetime | None:
    """When the counters are read next while a window is warm (None when none is)."""
    return now + timedelta(seconds=POLL_SECONDS) if warm_now(windows, now) else None


def _served(
    pods: list[dict[str, Any]],
    baseline: Mapping[str, Any],
    read_at: datetime,
    counters: Mapping[str, ServerCounters],
) -> tuple[float, float]:
    """Busy seconds and requests the read pods added since ``read_at`` (see the module doc)."""
    ready = {(p.get("metadata") or {}).get("uid"): ready_at(p) for p in pods}
    busy = requests = 0.0
    for uid, now in counters.items():
        before = baseline.get(uid)
        if isinstance(before, Mapping):
            b_busy = float(before.get("busySeconds") or 0.0)
            b_req = float(before.get("requests") or 0.0)
            busy += now.busy_seconds - b_busy if now.busy_seconds >= b_busy else now.busy_seconds
            requests += now.requests - b_req if now.requests >= b_req else now.requests
        elif (since := ready.get(uid)) is not None and since >= read_at:
            busy += now.busy_seconds
            requests += now.requests
    return busy, requests


class _Ledger:
    """The per-window records of ``status.cost.windows``, updated piece by piece."""

    def __init__(self, windows: list[Window], previous: Mapping[str, Any]) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        for w in windows:
            old = previous.get(w.name)
            self.records[w.name] = dict(old) if isinstance(old, Mapping) else {}
        self.added: dict[str, Amounts] = {}

    def add(
        self, window: str, occurrence: tuple[datetime, datetime], figure: str, amount: float
    ) -> None:
        """Adds ``amount`` of ``figure`` to the window's totals and, when ``occurrence`` is its
        latest, to ``last``; an occurrence later than ``last`` becomes ``last`` (counted even
        when it adds nothing: a warm span with no pod Ready still happened)."""
        if amount < 0:
            return
        record = self.records[window]
        start = stamp(occurrence[0])
        last = record.get("last") if isinstance(record.get("last"), Mapping) else None
        last_start = instant((last or {}).get("start"))
        if last is None or last_start is None or occurrence[0] > last_start:
            record["occurrences"] = int(record.get("occurrences") or 0) + 1
            last = {"start": start, "end": stamp(occurrence[1]), **dict.fromkeys(FIGURES, 0)}
        if last.get("start") == start:
            record["last"] = {**last, figure: _sum(last.get(figure), amount, figure)}
        record[figure] = _sum(record.get(figure), amount, figure)
        amounts = self.added.setdefault(window, Amounts())
        attribute = {
            "warmReplicaSeconds": "warm",
            "servedReplicaSeconds": "served",
            "leadRequests": "lead_requests",
            "coldStarts": "cold_starts",
            "unaccountedSeconds": "unaccounted",
        }[figure]
        setattr(amounts, attribute, getattr(amounts, attribute) + amount)

    def status(self, previous: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {name: None for name in previous if name not in self.records}
        for name, record in self.records.items():
            out[name] = {
                "occurrences": int(record.get("occurrences") or 0),
                **{f: record.get(f) or 0 for f in FIGURES},
                **({"last": record["last"]} if record.get("last") else {}),
            }
        return out


def _sum(before: Any, amount: float, figure: str) -> float | int:
    total = (float(before) if isinstance(before, int | float) else 0.0) + amount
    return round(total) if figure == "coldStarts" else round(total, 3)


def account(
    windows: list[Window],
    pods: list[dict[str, Any]],
    previous: Mapping[str, Any] | None,
    now: datetime,
    *,
    counters: Mapping[str, ServerCounters] | None = None,
    cold_starts: Iterable[ColdStart] = (),
    resumed: bool = False,
) -> CostReport:
    """The new ``status.cost`` after a pass at ``now``.

    ``pods``: the server pods as the watches show them; ``counters``: what this pass read from
    the Ready ones, by uid (None: not read); ``cold_starts``: the starts counted this pass;
    ``resumed``: this is the operator process's first pass over the service."""
    now = to_utc(now)
    previous = previous or {}
    ledger = _Ledger(windows, previous.get("windows") or {})
    ready = [t for t in (ready_at(p) for p in ready_pods(pods)) if t is not None]
    accounted_at = instant(previous.get("accountedAt"))

    touched = warm_now(windows, now)
    if accounted_at is not None and accounted_at < now:
        before = int(previous.get("ready") or 0)
        still = sum(t <= accounted_at for t in ready)
        gone = max(0, before - still)
        for p in pieces(windows, accounted_at, now):
            if p.window is None or p.occurrence is None:
                continue
            touched = True
            if resumed:
                ledger.add(p.window, p.occurrence, "unaccountedSeconds", p.seconds)
                continue
            seconds = gone * p.seconds + sum(
                max(0.0, (p.end - max(p.start, t)).total_seconds()) for t in ready
            )
            ledger.add(p.window, p.occurrence, "warmReplicaSeconds", seconds)

    baseline = previous.get("counters") or {}
    read_at = instant(baseline.get("readAt"))
    new_counters: dict[str, Any] | None = None
    if counters is not None:
        old_pods = baseline.get("pods") if isinstance(baseline.get("pods"), Mapping) else {}
        if read_at is not None and not resumed and timedelta(0) < now - read_at <= READ_GAP:
            busy, requests = _served(pods, old_pods, read_at, counters)
            span = (now - read_at).total_seconds()
            for p in pieces(windows, read_at, now):
                if p.window is None or p.occurrence is None:
                    continue
                share = p.seconds / span
                ledger.add(p.window, p.occurrence, "servedReplicaSeconds", busy * share)
                if p.lead:
                    ledger.add(p.window, p.occurrence, "leadRequests", requests * share)
        pods_now: dict[str, Any] = {uid: None for uid in old_pods if uid not in counters}
        pods_now |= {
            uid: {"busySeconds": round(c.busy_seconds, 3), "requests": c.requests}
            for uid, c in sorted(counters.items())
        }
        new_counters = {"readAt": _precise(now), "pods": pods_now}

    for start in cold_starts:
        if start.split is None or not start.in_window:
            continue
        for t in (start.split.created, start.split.ready_at):
            owner = _owner(windows, _spans_at(windows, to_utc(t)), to_utc(t), proper=True)
            if owner is not None:
                ledger.add(owner[0].name, owner[1], "coldStarts", 1)
                break

    windows_status = ledger.status(previous.get("windows") or {})
    if (
        previous
        and not touched
        and counters is None
        and not ledger.added
        and len(ready) == previous.get("ready")
        and None not in windows_status.values()
    ):
        # Nothing warm since accountedAt: the status stays as it is (no write while idle).
        return CostReport(dict(previous))
    status: dict[str, Any] = {
        "since": previous.get("since") or stamp(now),
        "accountedAt": _precise(now),
        "ready": len(ready),
        "windows": windows_status,
    }
    if new_counters is not None:
        status["counters"] = new_counters
    elif baseline:
        status["counters"] = dict(baseline)
    return CostReport(status, ledger.added)


def _spans_at(windows: list[Window], t: datetime) -> dict[str, list[tuple[datetime, datetime]]]:
    return {w.name: _spans(w, t, t) for w in windows}


def _precise(when: datetime) -> str:
    """An instant to the millisecond: the next pass integrates from it, so whole seconds would
    count up to a second twice."""
    return to_utc(when).isoformat(timespec="milliseconds").replace("+00:00", "Z")
