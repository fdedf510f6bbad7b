"""Status of an EmotiVoiceService from what the API shows of its children. Pure.

The phase says where the service is; when it is not Ready, the message says what is missing
(a pod that cannot be scheduled, the model still downloading, the model still loading), because
"Progressing" alone sends the user to kubectl describe.

The tuning fields, for readers of status (``kubectl``, a preview tool); each is defined once, in
the module that computes it, and described in the CRD's status schema:

- ``coldStarts`` (tuning/coldstarts.py): ``count``, ``inWindow``, ``outsideWindows``,
  ``lastSeconds``, ``medianSeconds``, ``p95Seconds``, ``cacheHitRate`` (0..1), ``phases``
  {phase: {p50, p95}}, ``recent[]`` (<= 20) {pod, at, seconds, cache, downloadedBytes,
  inWindow, restarts, source, phases{scheduling, image, retry, fetch, import, load, warmup,
  probe | server}, fetch{list, download, verify, convert}};
- ``misses`` (tuning/misses.py): ``count``, ``met``, ``lastChecked`` {window: instant},
  ``recent[]`` (<= 10) {window, at, until, required, ready, short, lateSeconds, open};
- ``leadTime`` (tuning/lead.py, only with ``leadTime: auto`` windows): ``mode`` (initial |
  learned), ``seconds``, ``duration``, ``basis``, ``samples``, ``p95Seconds``.
- ``calendar`` (windows/calendar.py, only with warmPool.dates or calendars): ``calendars``
  (found), ``missing``, ``upcoming[]`` {date, name, windows, source} from yesterday to 14 days
  ahead: what the pre-warm jobs read, since their Role cannot read calendars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emotivoice_fetch import errors as fetch_errors

# Present while spec.warmPool.calendars names any: False while one is missing or invalid.
CALENDARS_CONDITION = "CalendarsFound"
# The longest fetch error a status message quotes (a service's message joins up to 3 pods').
MAX_DETAIL = 300


@dataclass(frozen=True)
class Observed:
    generation: int
    warm_floor: int
    active_window: str
    next_window: str
    next_window_start: datetime | None
    # The server workload: a Deployment (Shared, Ephemeral) or a StatefulSet (PerReplica).
    workload: dict[str, Any] | None
    pods: list[dict[str, Any]]
    cold_starts: dict[str, Any] | None = None
    # status.misses (tuning/misses.py) and status.leadTime (tuning/lead.py); None: absent.
    misses: dict[str, Any] | None = None
    lead_time: dict[str, Any] | None = None
    # status.cost (tuning/cost.py); None: not accounted this pass, the last stands.
    cost: dict[str, Any] | None = None
    spec_error: str | None = None
    apply_error: str | None = None
    # A child's name is taken by an object that is not ours (see reconcile/ownership.py).
    conflict: str | None = None
    # Merge patch of status.warmRequests: entries removed (None) or capped to their bounds.
    warm_request_fixes: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # status.cache: the cache scope in force, why, and the per-replica claims (see observe.py).
    cache: dict[str, Any] | None = None
    # Replicas the spec allows may not reach the cache (a Shared ReadWriteOnce claim).
    cache_warning: str | None = None
    # spec.fallback: status.routing and status.wake (None: absent; a key that was written and
    # is absent now is sent as None, which removes it).
    routing: dict[str, Any] | None = None
    wake: dict[str, Any] | None = None
    clear: tuple[str, ...] = ()
    # status.calendar (windows/calendar.py: Calendar.status; None: no dates in use), and the
    # CalendarsFound condition: None without named calendars, else (found all, message).
    calendar: dict[str, Any] | None = None
    calendars_found: tuple[bool, str] | None = None
    # status.prePull and status.capacity (reconcile/warmpath.py); None: left as they are.
    pre_pull: dict[str, Any] | None = None
    capacity: dict[str, Any] | None = None


def _condition(type_: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _pod_problem(pod: dict[str, Any]) -> str | None:
    """Why one server pod is not ready, in words a user acts on; None when it is ready."""
    status = pod.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if conditions.get("Ready", {}).get("status") == "True":
        return None
    name = pod["metadata"]["name"]
    scheduled = conditions.get("PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return f"{name} cannot be scheduled: {scheduled.get('message', scheduled.get('reason'))}"
    for init in status.get("initContainerStatuses") or []:
        problem = _fetch_problem(name, init)
        if problem is not None:
            return problem
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            return f"{name}: server waiting: {waiting.get('reason')} {waiting.get('message', '')}".strip()
    return f"{name}: loading and warming up the model"


def _fetch_problem(name: str, init: dict[str, Any]) -> str | None:
    """Why the fetch step (the init container) holds the pod back; None once it succeeded.

    A failed fetch is retried by the kubelet: between tries the container's ``state`` is
    ``waiting: CrashLoopBackOff`` and the failure itself is in ``lastState.terminated`` (exit
    code, and the message: with FallbackToLogsOnError, the log's tail, whose last line is the
    fetch step's one-line error). So the exit code is read from whichever holds it, and named
    with its meaning from the fetch step's own table (``emotivoice_fetch.errors``)."""
    state = init.get("state") or {}
    terminated = state.get("terminated")
    if terminated is not None:
        if terminated.get("exitCode") == 0:
            return None
        return f"{name}: model download failed, {_failure(terminated)}"
    waiting = state.get("waiting") or {}
    last = (init.get("lastState") or {}).get("terminated") or {}
    if last.get("exitCode"):
        if "running" in state:
            return f"{name}: downloading the model again; the last try failed, {_failure(last)}"
        retry = f"; retried after a back-off ({waiting['reason']})" if waiting.get("reason") else ""
        return f"{name}: model download failed, {_failure(last)}{retry}"
    if waiting.get("reason") not in (None, "PodInitializing"):
        return f"{name}: model download waiting: {waiting.get('reason')} {waiting.get('message', '')}".strip()
    return f"{name}: downloading the model"


def fetch_failing(pods: list[dict[str, Any]]) -> int:
    """Pods whose fetch step's last try failed (its state or, between tries, its last state:
    see ``_fetch_problem``) and that are not Ready: what the fetch-failing alert counts."""
    failing = 0
    for pod in pods:
        if _pod_problem(pod) is None:
            continue
        for init in (pod.get("status") or {}).get("initContainerStatuses") or []:
            state = init.get("state") or {}
            terminated = state.get("terminated")
            last = (init.get("lastState") or {}).get("terminated") or {}
            if terminated is not None:
                failed = terminated.get("exitCode") != 0
            else:
                failed = bool(last.get("exitCode"))
            if failed:
                failing += 1
                break
    return failing


def _failure(terminated: dict[str, Any]) -> str:
    """``exit 3 (the store refused the credentials): access denied ...``, from a
    ``terminated`` container state."""
    code = terminated.get("exitCode")
    lines = [line.strip() for line in (terminated.get("message") or "").splitlines()]
    detail = next((line for line in reversed(lines) if line), "") or terminated.get("reason") or ""
    detail = detail.removeprefix(f"{fetch_errors.PROG}: ").removeprefix("error: ")
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 3] + "..."
    said = fetch_errors.describe_exit(code) if isinstance(code, int) else "no exit code"
    return f"{said}: {detail}" if detail else said


def _model_cached(pods: list[dict[str, Any]]) -> bool:
    """A pod whose fetch step finished has a complete, verified model on the volume."""
    for pod in pods:
        for init in (pod.get("status") or {}).get("initContainerStatuses") or []:
            terminated = (init.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") == 0 or init.get("ready"):
                return True
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        ):
            return True
    return False


def compute_status(obs: Observed) -> dict[str, Any]:
    workload_status = (obs.workload or {}).get("status") or {}
    desired = ((obs.workload or {}).get("spec") or {}).get("replicas", 0) or 0
    ready = workload_status.get("readyReplicas", 0) or 0
    existing = workload_status.get("replicas", 0) or 0
    problems = [p for p in (_pod_problem(pod) for pod in obs.pods) if p]

    if obs.spec_error:
        phase, message = "Failed", obs.spec_error
    elif obs.conflict:
        phase, message = "Failed", obs.conflict
    elif obs.apply_error:
        phase, message = "Degraded", obs.apply_error
    elif obs.warm_floor == 0 and desired == 0 and existing == 0:
        phase, message = (
            "ScaledToZero",
            "no warm window is active; the next one brings replicas back",
        )
    elif desired > 0 and ready >= desired:
        phase, message = "Ready", f"{ready} of {desired} replicas ready"
    else:
        # The workload is a Deployment (Shared, Ephemeral) or a StatefulSet (PerReplica).
        workload = (obs.workload or {}).get("kind") or "Deployment"
        detail = "; ".join(sorted(problems)[:3]) or f"waiting for the {workload} to create pods"
        phase, message = (
            "Progressing",
            f"{ready} of {max(desired, obs.warm_floor)} replicas ready: {detail}",
        )

    gen = obs.generation
    conditions = [
        _condition(
            "SpecValid", not (obs.spec_error or obs.conflict),
            "Invalid" if obs.spec_error else "NameConflict" if obs.conflict else "Valid",
            obs.spec_error or obs.conflict or "the spec can be honoured", gen,
        ),
        _condition(
            "ModelCached", _model_cached(obs.pods), "Fetched" if _model_cached(obs.pods) else "NotYet",
            "a pod has a complete, verified model on the cache volume"
            if _model_cached(obs.pods) else "no pod has finished the model download yet", gen,
        ),
        _condition("Ready", phase == "Ready", phase, message, gen),
        _condition(
            "WarmWindowActive", bool(obs.active_window),
            "InWindow" if obs.active_window else "OutsideWindows",
            f"window {obs.active_window} holds the floor at {obs.warm_floor}"
            if obs.active_window else f"floor is replicas.min ({obs.warm_floor})", gen,
        ),
        _condition(
            "CacheReachable", not obs.cache_warning,
            "SharedReadWriteOnce" if obs.cache_warning else "Reachable",
            obs.cache_warning or "every replica the spec allows can mount its cache", gen,
        ),
    ]  # fmt: skip
    if obs.calendars_found is not None:
        found, text = obs.calendars_found
        conditions.append(
            _condition(
                CALENDARS_CONDITION, found, "Found" if found else "CalendarMissing", text, gen
            )
        )
    fixes = {"warmRequests": dict(obs.warm_request_fixes)} if obs.warm_request_fixes else {}
    return {
        **fixes,
        "phase": phase,
        "message": message,
        "observedGeneration": gen,
        "replicas": existing,
        "readyReplicas": ready,
        "desiredReplicas": desired,
        "warmFloor": obs.warm_floor,
        "activeWindow": obs.active_window,
        "nextWindow": obs.next_window,
        "nextWindowStart": obs.next_window_start.isoformat().replace("+00:00", "Z")
        if obs.next_window_start
        else None,
        "coldStarts": obs.cold_starts or {"count": 0, "recent": []},
        **({"cache": obs.cache} if obs.cache else {}),
        **({"misses": obs.misses} if obs.misses is not None else {}),
        **({"leadTime": obs.lead_time} if obs.lead_time is not None else {}),
        **({"cost": obs.cost} if obs.cost is not None else {}),
        **dict.fromkeys(obs.clear),
        **({"routing": obs.routing} if obs.routing is not None else {}),
        **({"wake": obs.wake} if obs.wake is not None else {}),
        **({"prePull": obs.pre_pull} if obs.pre_pull is not None else {}),
        **({"capacity": obs.capacity} if obs.capacity is not None else {}),
        # Always written: None removes a calendar no longer in use (a merge patch).
        "calendar": obs.calendar,
        "conditions": conditions,
    }


def with_transition_times(
    new: list[dict[str, Any]], old: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Keeps lastTransitionTime of conditions whose status did not change."""
    before = {c["type"]: c for c in old or []}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        same = prev and prev.get("status") == cond["status"]
        out.append({**cond, "lastTransitionTime": prev.get("lastTransitionTime") if same else now})
    return out
