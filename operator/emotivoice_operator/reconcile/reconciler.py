"""One reconcile pass for one EmotiVoiceService: render, apply, prune, hold the floor, report.

Called by the work queue (reconcile/queue.py) with what the watches show (``Snapshot``), so
there is one way the cluster converges and an idle service costs no API request at all: the
resource, its children and its pods come from the watches' indexes; the API is read only for a
rendered child no index shows (it may be someone else's object of that name), and written only
where something differs. The answers to the operator's own writes are kept until the watch
shows them (``watched.newer``), so a pass right after a write does not write again.

Observation and side effects are apart: ``_observe`` gathers what the cluster shows and what
changed (``Findings``), ``_report`` posts the Events and metrics for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from emotivoice_operator import metrics
from emotivoice_operator import windows as win
from emotivoice_operator.crd import GROUP, PLURAL, VERSION
from emotivoice_operator.crd.spec import SpecError
from emotivoice_operator.desired import DesiredState, desired_state
from emotivoice_operator.reconcile import claims, coldstarts, misses, server_phases
from emotivoice_operator.reconcile.apply import PRUNABLE, Applier, ApplyResult, apply_waves
from emotivoice_operator.reconcile.edges import next_edge
from emotivoice_operator.reconcile.ownership import conflict_message, controlled_by, is_ours
from emotivoice_operator.reconcile.status import Observed, compute_status, with_transition_times
from emotivoice_operator.reconcile.watched import Snapshot, compact, newer
from emotivoice_operator.render import Owner, names
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.windows.lead import LeadDecision, lead_in_force

log = logging.getLogger(__name__)

# (type, reason, message) -> posts a Kubernetes Event on the EmotiVoiceService.
EventPoster = Callable[[str, str, str], None]
SERVICE_KIND = "EmotiVoiceService"
# Timer periods between passes of a service with no time edge sooner: the pass that catches
# whatever no watch event told (it reads the watches, so it costs no API request either).
HORIZON_PERIODS = 20
# Requests one pass sends at once (its children's reads, then their applies: seven or eight).
REQUESTS_AT_ONCE = 8


@dataclass(frozen=True)
class Outcome:
    """What a pass leaves behind: the status in force and when the timer must come back."""

    status: dict[str, Any]
    next_edge: datetime


@dataclass
class Findings:
    """What a pass saw change (for Events and metrics; ``_report`` posts them)."""

    new_starts: list[coldstarts.ColdStart] = field(default_factory=list)
    miss_report: misses.MissReport | None = None
    lead: LeadDecision | None = None
    p95_seconds: float | None = None  # of the cold starts, this pass's included


@dataclass
class Reconciler:
    api: client.ApiClient
    settings: OperatorSettings
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # (namespace, service) -> {(kind, name): the answer to our last write}, until a watch shows
    # that version or a later one. Only the pass of that service touches its entry (the queue
    # runs one pass per service at a time).
    _written: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self.applier = Applier(self.api)
        # The requests of one pass that do not depend on one another (the reads of children no
        # index shows, then the applies) go out at once: a new service's pass was 16 round
        # trips in a row, and at a thousand services the queue of passes, not the API
        # server, set the pace. Shared by the passes running at once (reconcile_workers).
        self._requests = ThreadPoolExecutor(
            requests_in_flight(self.settings), thread_name_prefix="request"
        )
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def forget(self, namespace: str, name: str) -> None:
        """Drops what is kept for a deleted service."""
        self._written.pop((namespace, name), None)

    def _current(
        self, owner: tuple[str, str], kind: str, name: str, watched: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The newest copy known of one object: the watch's, or the answer to our last write
        while the watch has not shown it yet."""
        written = self._written.get(owner, {})
        mine = written.get((kind, name))
        if mine is None:
            return watched
        if watched is not None and newer(mine, watched) is watched:
            written.pop((kind, name), None)  # the watch has caught up: it alone speaks now
            return watched
        return mine

    def forget_object(self, namespace: str, owner: str, kind: str, name: str) -> None:
        """A watch saw the object deleted: the answer to an earlier write no longer stands."""
        self._written.get((namespace, owner), {}).pop((kind, name), None)

    def _remember(self, owner: tuple[str, str], obj: dict[str, Any]) -> None:
        key = (obj["kind"], obj["metadata"]["name"])
        self._written.setdefault(owner, {})[key] = compact(obj)

    def reconcile(self, snap: Snapshot, post: EventPoster) -> Outcome | None:
        """One pass over ``snap``; None when the service is gone or being deleted."""
        if snap.body is None:
            return None
        meta = snap.body["metadata"]
        key = (meta["namespace"], meta["name"])
        body = self._current(key, SERVICE_KIND, meta["name"], snap.body)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        return self._reconcile(body, snap, post)

    def _reconcile(self, body: dict[str, Any], snap: Snapshot, post: EventPoster) -> Outcome:
        meta = body["metadata"]
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
        key = (owner.namespace, owner.name)
        old_status = body.get("status") or {}
        now = self.clock()
        horizon = timedelta(seconds=self.settings.timer_interval * HORIZON_PERIODS)
        requests, malformed = _warm_requests(old_status)
        shared = self._current(
            key, "PersistentVolumeClaim", names.model_cache(owner.name),
            snap.child("PersistentVolumeClaim", names.model_cache(owner.name)),
        )  # fmt: skip
        try:
            desired = desired_state(
                body.get("spec") or {}, owner, now, requests, self.settings,
                cold_start_seconds=_recent_seconds(old_status),
                lead_in_force=lead_in_force(old_status),
                shared_claim_exists=shared is not None and is_ours(shared, owner.uid, owner.name),
            )  # fmt: skip
        except SpecError as exc:
            if old_status.get("message") != str(exc):
                post("Warning", "InvalidSpec", str(exc))
            observed, findings = self._observe(body, owner, None, snap, spec_error=str(exc))
            self._report(owner, None, findings, old_status, post)
            return Outcome(self._write_status(body, observed), now + horizon)

        floor = desired.warm_floor
        metrics.WARM_FLOOR.labels(owner.namespace, owner.name).set(floor)
        manifests = desired.manifests
        apply_error = conflict = None
        kept_claims: list[str] | None = None
        deleted_claims: list[str] = []
        try:
            lives = self._lives(key, manifests, snap)
            taken = [
                (m["kind"], m["metadata"]["name"])
                for m, live in zip(manifests, lives, strict=True)
                if live is not None and not is_ours(live, owner.uid, owner.name)
            ]
            if taken:
                # Nothing is applied while a name is taken: a RoleBinding would bind our Role
                # to their ServiceAccount, an HPA would scale their Deployment.
                conflict = conflict_message(taken, owner.name)
                if old_status.get("message") != conflict:
                    post("Warning", "NameConflict", conflict)
            else:
                self._apply_all(owner, manifests, lives, snap, post)
                self._hold_floor(owner, floor, workload_kind(manifests), snap, post)
                kept_claims, deleted_claims = self._clean_claims(owner, desired, snap, post)
        except ApiException as exc:
            apply_error = f"the API refused a child: {_api_reason(exc)}"
            if old_status.get("message") != apply_error:
                post("Warning", "ApplyFailed", apply_error)
        observed, findings = self._observe(
            body,
            owner,
            desired,
            snap,
            apply_error=apply_error,
            conflict=conflict,
            request_fixes=_request_fixes(requests, malformed, desired.warm_requests),
            claims=(kept_claims, deleted_claims),
        )
        self._report(owner, desired, findings, old_status, post)
        status = self._write_status(body, observed)
        warning = desired.cache.warning
        if warning and _condition_message(old_status, "CacheReachable") != warning:
            post("Warning", "CacheUnreachable", warning)
        if status.get("phase") != old_status.get("phase"):
            post("Normal", f"Phase{status['phase']}", status["message"])
        if conflict or apply_error:
            # Someone else's object carries none of our labels, so no watch tells when it goes;
            # a refused apply may pass next time: both are looked at again every timer period.
            return Outcome(status, now)
        edge = next_edge(desired.windows, desired.warm_requests, status.get("misses"), now, horizon)
        return Outcome(status, edge)

    def _lives(
        self, key: tuple[str, str], manifests: list[dict[str, Any]], snap: Snapshot
    ) -> list[dict[str, Any] | None]:
        """The live object of each rendered child: the watch's (or our last write's); read from
        the API when neither shows one (an object of that name without our labels is in no
        index, and it must be seen before anything is applied over it). Those reads go out
        together (``_requests``)."""
        lives = []
        for m in manifests:
            kind, name = m["kind"], m["metadata"]["name"]
            lives.append(self._current(key, kind, name, snap.child(kind, name)))
        unseen = [i for i, live in enumerate(lives) if live is None]
        read = self._requests.map(self.applier.live, [manifests[i] for i in unseen])
        for i, live in zip(unseen, read, strict=True):
            lives[i] = live
        return lives

    def _apply_all(
        self,
        owner: Owner,
        manifests: list[dict[str, Any]],
        lives: list[dict[str, Any] | None],
        snap: Snapshot,
        post: EventPoster,
    ) -> None:
        key = (owner.namespace, owner.name)
        created = []
        for result in self._apply_waves(key, manifests, lives):
            metrics.CHILD_APPLIES.labels(result.kind, result.action).inc()
            if result.action == "created":
                created.append(f"{result.kind} {result.name}")
            elif result.action == "updated":
                message = f"{result.kind} {result.name}: applied {', '.join(result.drift[:4])}"
                if result.held:
                    message += (
                        f"; {', '.join(result.held[:4])} still differ: another writer holds "
                        "those fields, left as they are (reported once)"
                    )
                post("Normal", "Updated", message)
        if created:
            # One Event for what one pass created (a new service: seven children), not one each:
            # Events are a third of the API writes while a thousand services converge.
            post("Normal", "Created", f"created {', '.join(created)}")
        prunable = [c for c in snap.children if (c.get("apiVersion"), c.get("kind")) in PRUNABLE]
        for result in self.applier.prune(owner.namespace, owner.uid, manifests, prunable):
            post("Normal", "Deleted", f"deleted {result.kind} {result.name}: no longer in the spec")

    def _apply_waves(
        self,
        key: tuple[str, str],
        manifests: list[dict[str, Any]],
        lives: list[dict[str, Any] | None],
    ) -> list[ApplyResult]:
        """Applies the children wave by wave (apply.apply_waves), each wave's requests at once;
        returns the results in render order. Every answer that came is kept (``_remember``)
        before the first refusal is raised, so the next pass does not write those again."""
        results: dict[int, ApplyResult] = {}
        for wave in apply_waves(manifests):
            futures = [
                (i, self._requests.submit(self.applier.apply, manifests[i], lives[i])) for i in wave
            ]
            refused: Exception | None = None
            for i, future in futures:
                try:
                    results[i] = result = future.result()
                except Exception as exc:  # the first refusal is raised once the wave is in
                    refused = refused or exc
                    continue
                if result.obj is not None:
                    self._remember(key, result.obj)
            if refused is not None:
                raise refused
        return [results[i] for i in sorted(results)]

    def _hold_floor(
        self, owner: Owner, floor: int, kind: str, snap: Snapshot, post: EventPoster
    ) -> None:
        """Raises the workload to the floor at once instead of waiting for the HPA's next sync.

        The HPA does nothing while its target has 0 replicas, so coming back from scale to
        zero needs this push; above 0 it only saves the HPA's sync period. The replicas are
        the workload's as the watch (or our last write) shows it: its scale's spec.replicas.
        """
        if floor == 0:
            return
        key, name = (owner.namespace, owner.name), names.server(owner.name)
        live = self._current(key, kind, name, snap.child(kind, name))
        if live is None or not controlled_by(live, owner.uid):
            return  # not created yet (our apply failed) or not ours: nothing to raise
        replicas = (live.get("spec") or {}).get("replicas") or 0
        if replicas >= floor:
            return
        patch = (
            self.apps.patch_namespaced_stateful_set_scale
            if kind == "StatefulSet"
            else self.apps.patch_namespaced_deployment_scale
        )
        scale = patch(
            name,
            owner.namespace,
            {"spec": {"replicas": floor}},
            field_manager=f"{names.FIELD_MANAGER}-floor",
        )
        # The workload as that write left it, until its watch event comes.
        self._remember(
            key,
            {
                **live,
                "metadata": {
                    **live["metadata"],
                    "resourceVersion": scale.metadata.resource_version,
                },
                "spec": {**live["spec"], "replicas": floor},
            },
        )
        post("Normal", "WarmFloor", f"scaled {name} from {replicas} to the warm floor {floor}")

    def _clean_claims(
        self, owner: Owner, desired: DesiredState, snap: Snapshot, post: EventPoster
    ) -> tuple[list[str], list[str]]:
        """Deletes the per-replica claims no replica can come back to (reconcile/claims.py);
        returns the claims kept and those deleted."""
        keep_below = desired.max_replicas if desired.cache.scope == "PerReplica" else 0
        found = claims.replica_claims(owner.name, snap.of_kind("PersistentVolumeClaim"))
        if not any(c.ordinal >= keep_below for c in found):
            return [c.name for c in found], []
        pod_names = [p["metadata"]["name"] for p in snap.pods]
        deleted = []
        for claim in claims.condemned(found, keep_below, pod_names, owner.name):
            try:
                self.core.delete_namespaced_persistent_volume_claim(
                    claim.name, owner.namespace,
                    body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=claim.uid)),
                )  # fmt: skip
            except ApiException as exc:
                if exc.status in (404, 409):  # gone already, or a new claim of that name
                    continue
                raise
            why = (
                f"ordinal {claim.ordinal} >= replicas.max {keep_below}"
                if keep_below
                else f"scope is {desired.cache.scope}, not PerReplica"
            )
            post(
                "Normal",
                "Deleted",
                f"deleted PersistentVolumeClaim {claim.name}: {why}, no replica comes back to it",
            )
            deleted.append(claim.name)
        return [c.name for c in found if c.name not in deleted], deleted

    def _observe(
        self,
        body: dict[str, Any],
        owner: Owner,
        desired: DesiredState | None,
        snap: Snapshot,
        *,
        spec_error: str | None = None,
        apply_error: str | None = None,
        conflict: str | None = None,
        request_fixes: dict[str, dict[str, Any] | None] | None = None,
        claims: tuple[list[str] | None, list[str]] = (None, []),
    ) -> tuple[Observed, Findings]:
        """What the watches show now, and what changed since the last status (no Event, no
        metric: ``_report`` does those); ``desired`` is None when the spec cannot be honoured.

        The one outside call: a server pod that just turned Ready is asked for its start-up
        phases (server_phases.py), which only that pod can tell."""
        key = (owner.namespace, owner.name)
        kinds = [workload_kind(desired.manifests)] if desired else ["StatefulSet", "Deployment"]
        deployment = None  # the server workload, of either kind
        for kind in kinds:
            live = self._current(
                key, kind, names.server(owner.name), snap.child(kind, names.server(owner.name))
            )
            # Someone else's workload of that name is not our replicas.
            if live is not None and controlled_by(live, owner.uid):
                deployment = live
                break
        pods = snap.pods
        old_status = body.get("status") or {}
        findings = Findings(lead=desired.lead if desired else None)
        cold, findings.new_starts = self._cold_starts(desired, pods, old_status)
        findings.p95_seconds = cold.get("p95Seconds")
        if desired and (desired.windows or old_status.get("misses")):
            findings.miss_report = misses.check(
                desired.windows, desired.min_replicas, pods, old_status.get("misses"), self.clock()
            )
        observed = Observed(
            generation=body["metadata"].get("generation", 0),
            warm_floor=desired.warm_floor if desired else 0,
            active_window=",".join(w.name for w in desired.active_windows) if desired else "",
            next_window=desired.next_window_text if desired else "",
            next_window_start=desired.next_window[1] if desired and desired.next_window else None,
            deployment=deployment,
            pods=pods,
            cold_starts=cold,
            misses=findings.miss_report.status if findings.miss_report else None,
            lead_time=desired.lead.status() if desired and desired.lead else None,
            spec_error=spec_error,
            apply_error=apply_error,
            conflict=conflict,
            warm_request_fixes=request_fixes or {},
            cache=_cache_status(desired, body, *claims),
            cache_warning=desired.cache.warning if desired else None,
        )
        return observed, findings

    def _cold_starts(
        self,
        desired: DesiredState | None,
        pods: list[dict[str, Any]],
        old_status: dict[str, Any],
    ) -> tuple[dict[str, Any], list[coldstarts.ColdStart]]:
        """The coldStarts status with the starts new since the last pass, and those starts."""
        previous = old_status.get("coldStarts")
        pending = coldstarts.pending_starts(pods, previous)
        bodies: dict[str, dict[str, Any]] = {}
        if self.settings.ask_servers:
            for start in pending[: server_phases.MAX_ASKS]:
                answer = server_phases.ask(start.pod)
                if answer is not None:
                    bodies[start.name] = answer
        windows = desired.windows if desired else []

        def in_window(created: datetime, ready: datetime) -> bool:
            return any(win.in_occurrence(w, t) for w in windows for t in (created, ready))

        return coldstarts.account(pods, previous, bodies, in_window)

    def _report(
        self,
        owner: Owner,
        desired: DesiredState | None,
        findings: Findings,
        old_status: dict[str, Any],
        post: EventPoster,
    ) -> None:
        """The Events and metrics of what a pass observed (cold starts, misses, the lead)."""
        ns, name = owner.namespace, owner.name
        for start in findings.new_starts:
            post("Normal", "ColdStart", coldstarts.describe(start))
            metrics.COLD_START_SECONDS.labels(ns, name).observe(start.seconds)
            if start.split is not None:
                for phase, seconds in start.split.phases.items():
                    metrics.COLD_START_PHASE_SECONDS.labels(ns, name, phase).observe(seconds)
                metrics.COLD_STARTS.labels(
                    ns, name, start.split.cache, "in" if start.in_window else "out"
                ).inc()
        report = findings.miss_report
        if report is not None and desired is not None:
            zones = {w.name: w.zone for w in desired.windows}
            p95 = findings.p95_seconds
            for miss in report.missed:
                metrics.WINDOW_MISSES.labels(ns, name, miss.window).inc()
                where = win.format_local(miss.at, zones[miss.window])
                post("Warning", "WindowMissed", misses.describe_miss(miss, where, p95))
            for window, _, _ in report.met:
                metrics.WINDOW_STARTS_MET.labels(ns, name, window).inc()
            for miss in report.caught_up:
                if miss not in report.missed:
                    post(
                        "Normal",
                        "WindowCaughtUp",
                        f"window {miss.window}: its {miss.required} replicas were Ready "
                        f"{miss.late_seconds:.0f} s after it opened",
                    )
            for miss in report.ended_short:
                post(
                    "Warning",
                    "WindowEndedShort",
                    f"window {miss.window} ended with fewer than its {miss.required} replicas Ready",
                )
        lead = findings.lead
        if lead is not None and desired is not None:
            now_lead = lead.status()
            metrics.LEAD_TIME_SECONDS.labels(ns, name).set(now_lead["seconds"])
            before = old_status.get("leadTime") or {}
            if (
                before.get("seconds") != now_lead["seconds"]
                or before.get("mode") != now_lead["mode"]
            ):
                post(
                    "Normal",
                    "LeadTime",
                    f"leadTime auto is {now_lead['duration']} ({lead.basis}): the pre-warm "
                    f"CronJobs of {', '.join(w.name for w in desired.windows if w.auto_lead)} "
                    "fire that early",
                )

    def _write_status(self, body: dict[str, Any], observed: Observed) -> dict[str, Any]:
        old = body.get("status") or {}
        status = compute_status(observed)
        now = self.clock().isoformat(timespec="seconds").replace("+00:00", "Z")
        status["conditions"] = with_transition_times(
            status["conditions"], old.get("conditions"), now
        )
        if all(old.get(k) == v for k, v in status.items()):
            return status
        meta = body["metadata"]
        metrics.STATUS_WRITES.inc()
        answer = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], {"status": status}
        )
        self._remember((meta["namespace"], meta["name"]), answer)
        return status


def requests_in_flight(settings: OperatorSettings) -> int:
    """The most API requests the passes running at once have in flight together (the size of
    the pass's request threads, and of the client's connection pool)."""
    return settings.reconcile_workers * REQUESTS_AT_ONCE


def workload_kind(manifests: list[dict[str, Any]]) -> str:
    """The server workload's kind among the rendered children (the cache scope chose it)."""
    return next(m["kind"] for m in manifests if m["kind"] in ("StatefulSet", "Deployment"))


def _condition_message(status: dict[str, Any], type_: str) -> str | None:
    return next(
        (c.get("message") for c in status.get("conditions") or [] if c.get("type") == type_), None
    )


def _cache_status(
    desired: DesiredState | None,
    body: dict[str, Any],
    kept: list[str] | None,
    deleted: list[str],
) -> dict[str, Any] | None:
    """status.cache: the scope in force and why, the per-replica claims kept (None: not listed
    this pass, the last list stands), and the claims deleted most recently (kept until the next
    deletion, so users can read what the clean-up rule did)."""
    if desired is None:
        return None
    previous = (body.get("status") or {}).get("cache") or {}
    out: dict[str, Any] = {"scope": desired.cache.scope, "reason": desired.cache.reason}
    claims_now = kept if kept is not None else previous.get("claims")
    if claims_now:
        out["claims"] = claims_now
    if deleted or previous.get("deletedClaims"):
        out["deletedClaims"] = deleted or previous["deletedClaims"]
    return out


def _recent_seconds(status: dict[str, Any]) -> list[float]:
    """Seconds to Ready of the recent cold starts in status (what leadTime: auto learns from)."""
    out = []
    for r in (status.get("coldStarts") or {}).get("recent") or []:
        try:
            out.append(float(r["seconds"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _warm_requests(status: dict[str, Any]) -> tuple[dict[str, win.WarmRequest], list[str]]:
    """Warm requests as status holds them, and the names of unreadable entries (which the
    reconciler removes rather than trips over)."""
    out: dict[str, win.WarmRequest] = {}
    malformed: list[str] = []
    for window, req in (status.get("warmRequests") or {}).items():
        try:
            out[window] = win.WarmRequest.from_status(req)
        except ValueError:
            log.warning("removing malformed warm request %r: %r", window, req)
            malformed.append(window)
    return out, malformed


def _request_fixes(
    requests: dict[str, win.WarmRequest],
    malformed: list[str],
    honoured: dict[str, win.WarmRequest],
) -> dict[str, dict[str, Any] | None]:
    """The merge patch of ``status.warmRequests`` that leaves only honoured, bounded requests:
    None removes an entry (no such window, unreadable), a value replaces one that asked for more
    than its window allows. Entries already in bounds are not written (a job may be writing its
    own request at this very moment)."""
    fixes: dict[str, dict[str, Any] | None] = dict.fromkeys(malformed)
    for window, request in requests.items():
        bounded = honoured.get(window)
        if bounded is None:
            fixes[window] = None
        elif bounded != request:
            fixes[window] = bounded.to_status()
    return fixes


def _api_reason(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        return f"{exc.status} {exc.reason}"
