"""One reconcile pass for one EmotiVoiceService: render, apply, prune, hold the floor, report.

Called by every trigger (create/update/resume, the timer, a child's change) with the same
arguments, so there is one way the cluster converges. Writes happen only where something
differs: an idle service costs reads, never writes.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from emotivoice_operator import metrics
from emotivoice_operator import windows as win
from emotivoice_operator.crd import GROUP, PLURAL, VERSION
from emotivoice_operator.crd.spec import SpecError
from emotivoice_operator.desired import DesiredState, desired_state
from emotivoice_operator.reconcile import claims, coldstarts, misses, server_phases
from emotivoice_operator.reconcile.apply import Applier
from emotivoice_operator.reconcile.ownership import conflict_message, controlled_by, is_ours
from emotivoice_operator.reconcile.status import Observed, compute_status, with_transition_times
from emotivoice_operator.render import Owner, labels, names
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.windows.lead import lead_in_force

log = logging.getLogger(__name__)

# (type, reason, message) -> posts a Kubernetes Event on the EmotiVoiceService.
EventPoster = Callable[[str, str, str], None]


@dataclass
class Reconciler:
    api: client.ApiClient
    settings: OperatorSettings
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.applier = Applier(self.api)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def reconcile(self, body: dict[str, Any], post: EventPoster) -> dict[str, Any]:
        meta = body["metadata"]
        with self._lock(meta["namespace"], meta["name"]):
            # A trigger's body may predate our last status write: read the current one, so
            # nothing (a cold start, a warm request) is counted from stale status.
            fresh = self.get(meta["namespace"], meta["name"])
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return {}
            return self._reconcile(fresh, post)

    def _reconcile(self, body: dict[str, Any], post: EventPoster) -> dict[str, Any]:
        meta = body["metadata"]
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
        old_status = body.get("status") or {}
        now = self.clock()
        requests, malformed = _warm_requests(old_status)
        try:
            desired = desired_state(
                body.get("spec") or {}, owner, now, requests, self.settings,
                cold_start_seconds=_recent_seconds(old_status),
                lead_in_force=lead_in_force(old_status),
                shared_claim_exists=self._shared_claim_exists(owner),
            )  # fmt: skip
        except SpecError as exc:
            if old_status.get("message") != str(exc):
                post("Warning", "InvalidSpec", str(exc))
            return self._write_status(
                body, self._observe(body, owner, None, post, spec_error=str(exc))
            )

        floor = desired.warm_floor
        metrics.WARM_FLOOR.labels(owner.namespace, owner.name).set(floor)
        manifests = desired.manifests
        apply_error = conflict = None
        kept_claims: list[str] | None = None
        deleted_claims: list[str] = []
        try:
            lives = [self.applier.live(m) for m in manifests]
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
                self._apply_all(owner, manifests, lives, post)
                self._hold_floor(owner, floor, workload_kind(manifests), post)
                kept_claims, deleted_claims = self._clean_claims(owner, desired, post)
        except ApiException as exc:
            apply_error = f"the API refused a child: {_api_reason(exc)}"
            if old_status.get("message") != apply_error:
                post("Warning", "ApplyFailed", apply_error)
        observed = self._observe(
            body,
            owner,
            desired,
            post,
            apply_error=apply_error,
            conflict=conflict,
            request_fixes=_request_fixes(requests, malformed, desired.warm_requests),
            claims=(kept_claims, deleted_claims),
        )
        status = self._write_status(body, observed)
        warning = desired.cache.warning
        if warning and _condition_message(old_status, "CacheReachable") != warning:
            post("Warning", "CacheUnreachable", warning)
        if status.get("phase") != old_status.get("phase"):
            post("Normal", f"Phase{status['phase']}", status["message"])
        return status

    def _apply_all(
        self,
        owner: Owner,
        manifests: list[dict[str, Any]],
        lives: list[dict[str, Any] | None],
        post: EventPoster,
    ) -> None:
        for manifest, live in zip(manifests, lives, strict=True):
            result = self.applier.apply(manifest, live)
            metrics.CHILD_APPLIES.labels(result.kind, result.action).inc()
            if result.action == "created":
                post("Normal", "Created", f"created {result.kind} {result.name}")
            elif result.action == "updated":
                message = f"{result.kind} {result.name}: applied {', '.join(result.drift[:4])}"
                if result.held:
                    message += (
                        f"; {', '.join(result.held[:4])} still differ: another writer holds "
                        "those fields, left as they are (reported once)"
                    )
                post("Normal", "Updated", message)
        for result in self.applier.prune(owner.namespace, owner.name, owner.uid, manifests):
            post("Normal", "Deleted", f"deleted {result.kind} {result.name}: no longer in the spec")

    def _shared_claim_exists(self, owner: Owner) -> bool:
        """Whether the claim NAME-model exists and is ours: an unset cache scope stays Shared."""
        live = self.applier.get(
            "v1", "PersistentVolumeClaim", names.model_cache(owner.name), owner.namespace
        )
        return live is not None and is_ours(live, owner.uid, owner.name)

    def _hold_floor(self, owner: Owner, floor: int, kind: str, post: EventPoster) -> None:
        """Raises the workload to the floor at once instead of waiting for the HPA's next sync.

        The HPA does nothing while its target has 0 replicas, so coming back from scale to
        zero needs this push; above 0 it only saves the HPA's sync period.
        """
        if floor == 0:
            return
        read, patch = (
            (self.apps.read_namespaced_stateful_set_scale, self.apps.patch_namespaced_stateful_set_scale)
            if kind == "StatefulSet"
            else (self.apps.read_namespaced_deployment_scale, self.apps.patch_namespaced_deployment_scale)
        )  # fmt: skip
        scale = read(names.server(owner.name), owner.namespace)
        if (scale.spec.replicas or 0) < floor:
            patch(
                names.server(owner.name),
                owner.namespace,
                {"spec": {"replicas": floor}},
                field_manager=f"{names.FIELD_MANAGER}-floor",
            )
            post(
                "Normal",
                "WarmFloor",
                f"scaled {names.server(owner.name)} from {scale.spec.replicas or 0} to the warm floor {floor}",
            )

    def _clean_claims(
        self, owner: Owner, desired: DesiredState, post: EventPoster
    ) -> tuple[list[str], list[str]]:
        """Deletes the per-replica claims no replica can come back to (reconcile/claims.py);
        returns the claims kept and those deleted."""
        keep_below = desired.max_replicas if desired.cache.scope == "PerReplica" else 0
        pvcs = self.core.list_namespaced_persistent_volume_claim(
            owner.namespace, label_selector=f"{names.LABEL_INSTANCE}={owner.name}"
        ).items
        found = claims.replica_claims(
            owner.name, [self.api.sanitize_for_serialization(p) for p in pvcs]
        )
        if not any(c.ordinal >= keep_below for c in found):
            return [c.name for c in found], []
        pods = self.core.list_namespaced_pod(
            owner.namespace,
            label_selector=",".join(
                f"{k}={v}" for k, v in labels.selector(owner, names.COMPONENT_SERVER).items()
            ),
        ).items
        deleted = []
        for claim in claims.condemned(
            found, keep_below, [p.metadata.name for p in pods], owner.name
        ):
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
        post: EventPoster,
        *,
        spec_error: str | None = None,
        apply_error: str | None = None,
        conflict: str | None = None,
        request_fixes: dict[str, dict[str, Any] | None] | None = None,
        claims: tuple[list[str] | None, list[str]] = (None, []),
    ) -> Observed:
        """What the API shows now; ``desired`` is None when the spec cannot be honoured."""
        kinds = [workload_kind(desired.manifests)] if desired else ["StatefulSet", "Deployment"]
        deployment = None  # the server workload, of either kind
        for kind in kinds:
            live = self.applier.get("apps/v1", kind, names.server(owner.name), owner.namespace)
            # Someone else's workload of that name is not our replicas.
            if live is not None and controlled_by(live, owner.uid):
                deployment = live
                break
        selector = ",".join(
            f"{k}={v}" for k, v in labels.selector(owner, names.COMPONENT_SERVER).items()
        )
        pods = [
            self.api.sanitize_for_serialization(p)
            for p in self.core.list_namespaced_pod(owner.namespace, label_selector=selector).items
        ]
        old_status = body.get("status") or {}
        cold = self._cold_starts(owner, desired, pods, old_status, post)
        missed = self._misses(owner, desired, pods, old_status, cold, post) if desired else None
        lead = desired.lead.status() if desired and desired.lead else None
        if lead and desired and desired.lead:
            metrics.LEAD_TIME_SECONDS.labels(owner.namespace, owner.name).set(lead["seconds"])
            before = old_status.get("leadTime") or {}
            if before.get("seconds") != lead["seconds"] or before.get("mode") != lead["mode"]:
                post(
                    "Normal",
                    "LeadTime",
                    f"leadTime auto is {lead['duration']} ({desired.lead.basis}): the pre-warm "
                    f"CronJobs of {', '.join(w.name for w in desired.windows if w.auto_lead)} "
                    "fire that early",
                )
        return Observed(
            generation=body["metadata"].get("generation", 0),
            warm_floor=desired.warm_floor if desired else 0,
            active_window=",".join(w.name for w in desired.active_windows) if desired else "",
            next_window=desired.next_window_text if desired else "",
            next_window_start=desired.next_window[1] if desired and desired.next_window else None,
            deployment=deployment,
            pods=pods,
            cold_starts=cold,
            misses=missed,
            lead_time=lead,
            spec_error=spec_error,
            apply_error=apply_error,
            conflict=conflict,
            warm_request_fixes=request_fixes or {},
            cache=_cache_status(desired, body, *claims),
            cache_warning=desired.cache.warning if desired else None,
        )

    def _cold_starts(
        self,
        owner: Owner,
        desired: DesiredState | None,
        pods: list[dict[str, Any]],
        old_status: dict[str, Any],
        post: EventPoster,
    ) -> dict[str, Any]:
        """Counts the starts new since the last pass, each with its phases, Event and metrics."""
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

        cold, new = coldstarts.account(pods, previous, bodies, in_window)
        for start in new:
            post("Normal", "ColdStart", coldstarts.describe(start))
            metrics.COLD_START_SECONDS.labels(owner.namespace, owner.name).observe(start.seconds)
            if start.split is not None:
                for phase, seconds in start.split.phases.items():
                    metrics.COLD_START_PHASE_SECONDS.labels(
                        owner.namespace, owner.name, phase
                    ).observe(seconds)
                metrics.COLD_STARTS.labels(
                    owner.namespace,
                    owner.name,
                    start.split.cache,
                    "in" if start.in_window else "out",
                ).inc()
        return cold

    def _misses(
        self,
        owner: Owner,
        desired: DesiredState,
        pods: list[dict[str, Any]],
        old_status: dict[str, Any],
        cold: dict[str, Any],
        post: EventPoster,
    ) -> dict[str, Any] | None:
        """Judges the window starts due now (Warning Event + counter for a miss)."""
        if not desired.windows and not old_status.get("misses"):
            return None
        report = misses.check(
            desired.windows, desired.min_replicas, pods, old_status.get("misses"), self.clock()
        )
        zones = {w.name: w.zone for w in desired.windows}
        p95 = cold.get("p95Seconds")
        for miss in report.missed:
            metrics.WINDOW_MISSES.labels(owner.namespace, owner.name, miss.window).inc()
            where = win.format_local(miss.at, zones[miss.window])
            post("Warning", "WindowMissed", misses.describe_miss(miss, where, p95))
        for window, _, _ in report.met:
            metrics.WINDOW_STARTS_MET.labels(owner.namespace, owner.name, window).inc()
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
        return report.status

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
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], {"status": status}
        )
        return status


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


def _warm_requests(status: dict[str, Any]) -> tuple[dict[str, tuple[int, datetime]], list[str]]:
    """Warm requests as status holds them, and the names of unreadable entries (which the
    reconciler removes rather than trips over)."""
    out: dict[str, tuple[int, datetime]] = {}
    malformed: list[str] = []
    for window, req in (status.get("warmRequests") or {}).items():
        try:
            expires = datetime.fromisoformat(str(req["expiresAt"]).replace("Z", "+00:00"))
            if expires.tzinfo is None:
                raise ValueError("expiresAt has no time zone")
            out[window] = (int(req["replicas"]), expires)
        except (KeyError, TypeError, ValueError):
            log.warning("removing malformed warm request %r: %r", window, req)
            malformed.append(window)
    return out, malformed


def _request_fixes(
    requests: dict[str, tuple[int, datetime]],
    malformed: list[str],
    honoured: dict[str, tuple[int, datetime]],
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
            fixes[window] = win.request_status(*bounded)
    return fixes


def _api_reason(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        return f"{exc.status} {exc.reason}"
