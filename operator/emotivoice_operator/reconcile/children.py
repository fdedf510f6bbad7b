"""A pass's I/O on its children: read the ones no watch shows, apply, prune, hold the floor,
delete the claims no replica comes back to.

The watches' copy of each child (controller/cache.py) stands, or the answer to the operator's
own last write while the watch has not shown it (controller/expectations.py); every answer to
a write here is kept there, so the next pass does not write the same thing again. The requests
of one pass that do not depend on one another go out at once (``requests_in_flight``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from emotivoice_operator.controller.cache import Snapshot
from emotivoice_operator.controller.expectations import Expectations
from emotivoice_operator.desired import DesiredState
from emotivoice_operator.reconcile import claims
from emotivoice_operator.reconcile.apply import PRUNABLE, Applier, ApplyResult, apply_waves
from emotivoice_operator.reconcile.ownership import controlled_by
from emotivoice_operator.reconcile.report import Reporter
from emotivoice_operator.render import Owner, names
from emotivoice_operator.settings import OperatorSettings

# Requests one pass sends at once (its children's reads, then their applies: seven or eight).
REQUESTS_AT_ONCE = 8
WORKLOAD_KINDS = ("StatefulSet", "Deployment")


def requests_in_flight(settings: OperatorSettings) -> int:
    """The most API requests the passes running at once have in flight together (the size of
    the pass's request threads, and of the client's connection pool)."""
    return settings.reconcile_workers * REQUESTS_AT_ONCE


def rendered_workload_kind(manifests: list[dict[str, Any]]) -> str:
    """The server workload's kind among the rendered children (render's ``workload_kind``
    chose it from the cache scope)."""
    return next(m["kind"] for m in manifests if m["kind"] in WORKLOAD_KINDS)


class Children:
    def __init__(
        self, api: client.ApiClient, settings: OperatorSettings, expectations: Expectations
    ) -> None:
        self.applier = Applier(api)
        self.expectations = expectations
        # The requests of one pass that do not depend on one another (the reads of children no
        # index shows, then the applies) go out at once: a new service's pass was 16 round
        # trips in a row, and at a thousand services the queue of passes, not the API
        # server, set the pace. Shared by the passes running at once (reconcile_workers).
        self._requests = ThreadPoolExecutor(
            requests_in_flight(settings), thread_name_prefix="request"
        )
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    def current(self, owner: Owner, kind: str, name: str, snap: Snapshot) -> dict[str, Any] | None:
        """The newest copy known of one child: the watch's, or the answer to our last write."""
        return self.expectations.newest(
            (owner.namespace, owner.name), kind, name, snap.child(kind, name)
        )

    def server_workload(
        self, owner: Owner, desired: DesiredState | None, snap: Snapshot
    ) -> dict[str, Any] | None:
        """The server workload of ours, of the kind rendered (of either kind when the spec
        cannot be honoured); someone else's workload of that name is not our replicas."""
        kinds = [rendered_workload_kind(desired.manifests)] if desired else list(WORKLOAD_KINDS)
        for kind in kinds:
            live = self.current(owner, kind, names.server(owner.name), snap)
            if live is not None and controlled_by(live, owner.uid):
                return live
        return None

    def lives(
        self, owner: Owner, manifests: list[dict[str, Any]], snap: Snapshot
    ) -> list[dict[str, Any] | None]:
        """The live object of each rendered child: the watch's (or our last write's); read from
        the API when neither shows one (an object of that name without our labels is in no
        index, and it must be seen before anything is applied over it). Those reads go out
        together (``_requests``)."""
        lives = []
        for m in manifests:
            lives.append(self.current(owner, m["kind"], m["metadata"]["name"], snap))
        unseen = [i for i, live in enumerate(lives) if live is None]
        read = self._requests.map(self.applier.live, [manifests[i] for i in unseen])
        for i, live in zip(unseen, read, strict=True):
            lives[i] = live
        return lives

    def apply_all(
        self,
        owner: Owner,
        manifests: list[dict[str, Any]],
        lives: list[dict[str, Any] | None],
        snap: Snapshot,
        report: Reporter,
    ) -> None:
        report.applied(self._apply_waves((owner.namespace, owner.name), manifests, lives))
        prunable = [c for c in snap.children if (c.get("apiVersion"), c.get("kind")) in PRUNABLE]
        for result in self.applier.prune(owner.namespace, owner.uid, manifests, prunable):
            report.pruned(result)

    def _apply_waves(
        self,
        key: tuple[str, str],
        manifests: list[dict[str, Any]],
        lives: list[dict[str, Any] | None],
    ) -> list[ApplyResult]:
        """Applies the children wave by wave (apply.apply_waves), each wave's requests at once;
        returns the results in render order. Every answer that came is kept (expectations)
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
                    self.expectations.expect(key, result.obj)
            if refused is not None:
                raise refused
        return [results[i] for i in sorted(results)]

    def hold_floor(
        self, owner: Owner, floor: int, kind: str, snap: Snapshot, report: Reporter
    ) -> None:
        """Raises the workload to the floor at once instead of waiting for the HPA's next sync.

        The HPA does nothing while its target has 0 replicas, so coming back from scale to
        zero needs this push; above 0 it only saves the HPA's sync period. The replicas are
        the workload's as the watch (or our last write) shows it: its scale's spec.replicas.
        """
        if floor == 0:
            return
        key, name = (owner.namespace, owner.name), names.server(owner.name)
        live = self.current(owner, kind, name, snap)
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
        self.expectations.expect(
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
        report.floor_raised(name, replicas, floor)

    def clean_claims(
        self, owner: Owner, desired: DesiredState, snap: Snapshot, report: Reporter
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
            report.claim_deleted(claim.name, why)
            deleted.append(claim.name)
        return [c.name for c in found if c.name not in deleted], deleted
