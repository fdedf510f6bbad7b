"""Where one server pod start went: the time from the pod's creation to its Ready condition,
split into phases a cluster operator can act on. Pure: the caller passes the pod object (as the
API returns it) and, when it could ask the server, the body of its ``/ready``.

The phases are consecutive intervals between instants the API records, so they always add up to
the start's total (pod created -> Ready) exactly:

- ``scheduling``: created -> PodScheduled (waiting for a node, a volume, capacity);
- ``image``: scheduled -> the first container of ours runs: the sandbox, the image pull (or
  none, on a node that holds it), the fetch container's creation. The server container runs
  the same image, which the fetch container's start has put on the node, so its creation (the
  init container's end -> the server's start) is not image time: it opens ``import``;
- ``retry``: time lost to failed attempts (a fetch step or a server that exited and was
  restarted, with the kubelet's back-off), from the last failed attempt's start to the start
  of the one that succeeded. Kubernetes keeps only the last failed attempt: with more than one
  restart, the earlier attempts count under ``image`` (a fetch step's) or ``import`` (a
  server's);
- ``fetch``: the init container's successful run (its own report, ``emotivoice_fetch.report``,
  splits it into list/download/verify/convert and says whether the cache was warm);
- ``import``, ``load``, ``warmup``: the server process's own phases from ``/ready`` (``import``
  is everything before loading: its container's creation, the interpreter, imports, the marker
  check), then ``probe``:
  the server's ``/ready`` turning 200 -> the kubelet marking the pod Ready;
- ``server``: when the server could not be asked (simulated nodes, a server that restarted
  since), its start -> Ready in one phase.

The API's timestamps have whole seconds (truncated), so where a finer clock recorded the same
instant, that one is the boundary:

- the pod's creation and its Ready: when the operator's watch showed the pod first and showed it
  turn Ready (``SEEN_FIELD``, controller/seen.py), within milliseconds of the truth; after an
  operator restart, or for a pod created before it started, the stamps;
- PodScheduled: the kube-scheduler's ``Scheduled`` Event, posted through events.k8s.io with
  an ``eventTime`` in microseconds (the caller lists the Events: ``scheduled_at``);
- the fetch step's start and end: its report's ``started_at``/``ended_at`` (the process's
  kernel start and the report's writing, in ms);
- the server's start: ``process_started_at`` of its ``/ready`` (the instant its
  ``ready_after_s`` counts from), so ``import``, ``load`` and ``warmup`` end where the server's
  own clock says.

So the ``image`` phase of a start on a node that holds the image is the gaps between the steps
as their own clocks saw them, not the one or two seconds two truncated stamps add. A finer
instant is taken only when it falls near its whole-second stamp (``SLACK``): one that does not
(a body from another process, a skewed clock) leaves the stamp in force. The container starts
without a finer source (a failed attempt's) keep whole seconds; so do the creation and Ready
when the operator did not watch them happen: the total is then created -> Ready as the API
records them, ``scheduling`` carries the creation's truncation and, when the server turned
ready within Ready's second, the boundaries past Ready are held at it (``probe`` reads 0,
``warmup`` loses the difference). The finer instants come from the operator's, the control
plane's and the node's clocks, taken as synchronised to the API's within the slack.

A boundary the pod does not show (no init container) is the previous one, and boundaries are
kept in order and within created -> Ready, so no phase is ever negative and the phases add up
to the total exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from emotivoice_fetch import report as fetch_report

FETCH_CONTAINER = "fetch-model"
SERVER_CONTAINER = "server"
# Every phase a start can have, in the order they happen.
PHASES = ("scheduling", "image", "retry", "fetch", "import", "load", "warmup", "probe", "server")
# What the server's /ready calls its phases -> ours. ``verifying`` (the completion marker) and
# the process's start before its first phase go to ``import``: all of it precedes loading.
SERVER_PHASES = {"loading": "load", "warming": "warmup"}
# Where the operator's watch puts, on its indexed copy of a pod, when it first saw the pod and
# when it saw it turn Ready (epoch seconds; controller/seen.py): the start's two ends, finer.
SEEN_FIELD = "emotivoiceSeen"
# How late after its whole-second stamp's second a watch instant is still taken (``watched``).
WATCH_LAG = timedelta(milliseconds=500)
# How far outside its whole-second stamp's second a finer instant may fall and still be taken
# as the same instant: a process's kernel start precedes its container's recorded start by the
# runtime's create -> start, an Event is recorded just after the binding it reports.
SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class StartSplit:
    """One start of one server pod, split into phases (seconds, in ``PHASES`` order)."""

    pod: str
    created: datetime
    ready_at: datetime
    phases: dict[str, float]
    # "warm", "waited", "downloaded" (the fetch step's report) or "unknown" (no report).
    cache: str = "unknown"
    downloaded_bytes: int = 0
    # The fetch step's own split of its run: list, download, verify, convert.
    fetch_phases: dict[str, float] = field(default_factory=dict)
    # "server" when its /ready gave the server's phases, "pod" when only the pod's states did,
    # "simulated" when no container runtime ran the server (KWOK's nodes: no containerID), so
    # its times measure a simulation, not a start.
    source: str = "pod"
    restarts: int = 0
    # The server container restarted in place: the start runs from its previous exit.
    after_restart: bool = False

    @property
    def seconds(self) -> float:
        return (self.ready_at - self.created).total_seconds()


def instant(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def epoch(seconds: float | None) -> datetime | None:
    """An epoch-seconds instant (a report's, a /ready body's) as a UTC datetime."""
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(float(seconds), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def refined(stamp: datetime | None, finer: datetime | None) -> datetime | None:
    """``finer`` where it records the instant whose whole-second ``stamp`` the API shows (in
    [stamp - SLACK, stamp + 1 s + SLACK)), else ``stamp``; ``finer`` alone when the API shows
    none."""
    if finer is None or stamp is None:
        return finer or stamp
    if stamp - SLACK <= finer < stamp + timedelta(seconds=1) + SLACK:
        return finer
    return stamp


def watched(stamp: datetime, seen: datetime | None) -> datetime:
    """``seen`` (when the operator's watch showed the change) where it falls in the stamp's
    second or at most ``WATCH_LAG`` after it, else ``stamp``. Tighter than ``refined``: a watch
    shows a change after it happened, never before, and one delivered late (a relist, a busy
    operator) would shorten a start's creation side by the delay."""
    if seen is not None and stamp <= seen < stamp + timedelta(seconds=1) + WATCH_LAG:
        return seen
    return stamp


def _condition_at(pod: dict[str, Any], type_: str) -> datetime | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return instant(c.get("lastTransitionTime"))
    return None


def ready_at(pod: dict[str, Any]) -> datetime | None:
    """When the pod turned Ready (None while it is not)."""
    return _condition_at(pod, "Ready")


def _container(statuses: list[dict[str, Any]] | None, name: str) -> dict[str, Any] | None:
    statuses = statuses or []
    return next((s for s in statuses if s.get("name") == name), statuses[0] if statuses else None)


def _attempts(
    status: dict[str, Any] | None,
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """(start of the last failed attempt, start of the current one, its end) of a container."""
    if not status:
        return None, None, None
    state = status.get("state") or {}
    current = state.get("terminated") or state.get("running") or {}
    failed = (status.get("lastState") or {}).get("terminated") or {}
    return (
        instant(failed.get("startedAt")),
        instant(current.get("startedAt")),
        instant(current.get("finishedAt")),
    )


def server_restarts(pod: dict[str, Any]) -> int:
    server = _container((pod.get("status") or {}).get("containerStatuses"), SERVER_CONTAINER)
    return int((server or {}).get("restartCount") or 0)


def server_started(pod: dict[str, Any]) -> datetime | None:
    server = _container((pod.get("status") or {}).get("containerStatuses"), SERVER_CONTAINER)
    return _attempts(server)[1]


def fetch_result(pod: dict[str, Any]) -> fetch_report.FetchReport | None:
    """The fetch step's report of this pod's successful run, if it left one."""
    init = _container((pod.get("status") or {}).get("initContainerStatuses"), FETCH_CONTAINER)
    terminated = ((init or {}).get("state") or {}).get("terminated") or {}
    return (
        fetch_report.parse(terminated.get("message")) if terminated.get("exitCode") == 0 else None
    )


class _Timeline:
    """Boundaries in order; each ``to`` closes the phase since the previous boundary."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.at = start
        self.end = end
        self.phases: dict[str, float] = {}

    def to(self, phase: str, when: datetime | None) -> None:
        if when is None:
            return
        when = min(max(when, self.at), self.end)
        seconds = (when - self.at).total_seconds()
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds
        self.at = when

    def ordered(self) -> dict[str, float]:
        return {p: round(self.phases[p], 3) for p in PHASES if p in self.phases}


def split(
    pod: dict[str, Any],
    ready_body: dict[str, Any] | None = None,
    *,
    since_restart: bool = False,
    scheduled_at: datetime | None = None,
) -> StartSplit | None:
    """The phases of the pod's start that ended in its current Ready; None while not Ready.

    ``ready_body`` is the server's ``/ready`` answer (used only when it reports ready and its
    process started with the server container's current start). ``since_restart``: the pod was
    Ready before and this start is its server container's restart in place; it then runs from
    the previous container's exit, not from the pod's creation. ``scheduled_at``: the
    ``eventTime`` of the scheduler's ``Scheduled`` Event for this pod, when the caller has it.
    """
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    ready = ready_at(pod)
    server = _container(status.get("containerStatuses"), SERVER_CONTAINER)
    failed_server, server_start, _ = _attempts(server)
    restarts = int((server or {}).get("restartCount") or 0)
    previous_exit = instant(
        ((server or {}).get("lastState") or {}).get("terminated", {}).get("finishedAt")
    )
    seen = pod.get(SEEN_FIELD) or {}
    if since_restart and previous_exit is not None:
        created = previous_exit
    else:
        created = instant(meta.get("creationTimestamp")) or instant(status.get("startTime"))
        created = watched(created, epoch(seen.get("first"))) if created else None
        since_restart = False
    if ready is None or created is None:
        return None
    ready = watched(ready, epoch(seen.get("ready")))
    ready = max(ready, created)
    fetched = None if since_restart else fetch_result(pod)
    reported = _server_seconds(ready_body)
    if server_start is not None and reported is not None:
        server_start = refined(server_start, reported.started)
    server_known = reported is not None and server_start is not None
    line = _Timeline(created, ready)
    if not since_restart:
        line.to("scheduling", refined(_condition_at(pod, "PodScheduled"), scheduled_at))
        init = _container(status.get("initContainerStatuses"), FETCH_CONTAINER)
        failed_init, init_start, init_end = _attempts(init)
        if fetched is not None:
            init_start = refined(init_start, epoch(fetched.started_at))
            init_end = refined(init_end, epoch(fetched.ended_at))
        line.to("image", failed_init or init_start)
        line.to("retry", init_start if failed_init else None)
        line.to("fetch", init_end)
        # The server container's creation: the start of the server's own phases (see above).
        line.to("import" if server_known else "server", failed_server or server_start)
    line.to("retry", server_start if failed_server or since_restart else None)
    source = "pod" if (server or {}).get("containerID") else "simulated"
    if reported is not None and server_start is not None:
        total, load, warmup = reported.total, reported.load, reported.warmup
        line.to("import", server_start + timedelta(seconds=total - load - warmup))
        line.to("load", server_start + timedelta(seconds=total - warmup))
        line.to("warmup", server_start + timedelta(seconds=total))
        line.to("probe", ready)
        source = "server"
    else:
        line.to("server", ready)
    return StartSplit(
        pod=meta.get("name", ""),
        created=created,
        ready_at=ready,
        phases=line.ordered(),
        cache="warm" if since_restart else (fetched.action if fetched else "unknown"),
        downloaded_bytes=fetched.downloaded_bytes if fetched else 0,
        fetch_phases={k: round(v, 3) for k, v in fetched.phases.items()} if fetched else {},
        source=source,
        restarts=restarts,
        after_restart=since_restart,
    )


class _ServerTimes(NamedTuple):
    total: float  # process start -> ready
    load: float
    warmup: float
    started: datetime | None  # the process's start (wall clock), when the body says


def _server_seconds(body: dict[str, Any] | None) -> _ServerTimes | None:
    """The server's own times from a ready server's /ready, else None."""
    if not body or not body.get("ready"):
        return None
    try:
        total = float(body["ready_after_s"])
        seconds = {k: float(v) for k, v in (body.get("phase_seconds") or {}).items()}
    except (KeyError, TypeError, ValueError):
        return None
    load, warmup = seconds.get("loading", 0.0), seconds.get("warming", 0.0)
    if total < 0 or load < 0 or warmup < 0 or load + warmup > total + 0.001:
        return None
    started = body.get("process_started_at")
    valid = isinstance(started, int | float) and not isinstance(started, bool) and started > 0
    return _ServerTimes(total, load, warmup, epoch(started) if valid else None)
