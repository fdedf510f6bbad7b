"""The floor under the operator benchmark: the same services' children and first statuses
written straight to the API server, no operator, measured in the same run.

Why: much of the convergence time on this machine is the control plane's (the API server,
etcd and the controllers, which make pods, claims, endpoints and revisions for every
StatefulSet and Service), and an absolute time says nothing about which part is the
operator's. The floor is a reference written as plainly as possible: each rendered child
applied once in render order (server-side apply, the operator's field manager, its identity)
and one status per service, from as many threads as the operator has workers, with no reads,
no Events and no watches. It is not a lower bound: an operator that sends one service's
applies at once can beat it (0.88x in one run of 100 services). The operator's convergence is reported
as a ratio to it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from emotivoice_operator.crd import GROUP, PLURAL, VERSION
from emotivoice_operator.desired import DesiredState, desired_state
from emotivoice_operator.reconcile.apply import Applier
from emotivoice_operator.reconcile.status import Observed, compute_status
from emotivoice_operator.render import Owner
from emotivoice_operator.settings import OperatorSettings

# As many writers at once as the operator's reconcile workers (settings.reconcile_workers).
THREADS = OperatorSettings().reconcile_workers


def _status(desired: DesiredState, generation: int) -> dict[str, Any]:
    """The status the operator's first pass writes: children made, no pod yet."""
    observed = Observed(
        generation=generation,
        warm_floor=desired.warm_floor,
        active_window=",".join(w.name for w in desired.active_windows),
        next_window=desired.next_window_text,
        next_window_start=desired.next_window[1] if desired.next_window else None,
        workload=None,
        pods=[],
        cache={"scope": desired.cache.scope, "reason": desired.cache.reason},
    )
    return compute_status(observed)


def write_children(api: Any, services: list[dict[str, Any]]) -> None:
    """Applies every rendered child of each created service (``services``: as the API returned
    them, uids included) and writes its status."""
    applier = Applier(api)
    custom = client.CustomObjectsApi(api)
    settings = OperatorSettings()
    now = datetime.now(UTC)

    def one(body: dict[str, Any]) -> None:
        meta = body["metadata"]
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
        desired = desired_state(body["spec"], owner, now, {}, settings)
        for manifest in desired.manifests:
            applier.apply(manifest, None)
        status = {"status": _status(desired, meta.get("generation", 1))}
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, owner.namespace, PLURAL, owner.name, status, _request_timeout=60
        )

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, services))
