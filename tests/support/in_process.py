"""A Reconciler run in process against a real API server, at the instants a test chooses.

Why: a test that waits for the real clock to cross a window's edge waits up to a minute, and then
for the operator's timer to bring the pass that judges it; under load that pass once came only
with the horizon, 20 periods later. Here the test runs each pass itself with ``Reconciler.clock``
set to the instant it wants (no operator subprocess, no kopf, no timer). The snapshot is built
from the API with the kinds and labels the operator's watches select (controller/selectors.py),
as its indexes would hold it; the Events a pass posts are recorded, not posted.

What the cluster does stays real: the controllers make the pods, the simulated nodes mark them
Ready, and those times are the API server's (a test that reads them places its windows on the
real clock, and sets the pass's clock where it needs it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import kopf
from kubernetes import config

from emotivoice_operator.controller.cache import Snapshot
from emotivoice_operator.controller.selectors import CHILD_KINDS, SERVER_PODS, WARM_PATH_COMPONENTS
from emotivoice_operator.reconcile.reconciler import Outcome, Reconciler
from emotivoice_operator.render import names
from emotivoice_operator.settings import OperatorSettings
from tests.support.cluster import KWOK_TOLERATION, Cluster
from tests.support.operator_process import wait_for


def selector(labels: Mapping[str, Any], instance: str) -> str:
    """A watch's label filter (controller/selectors.py) as a kubectl selector for one service's
    objects (the indexes key by the instance label's value)."""
    parts = []
    for key, value in labels.items():
        if key == names.LABEL_INSTANCE:
            parts.append(f"{key}={instance}")
        elif value is kopf.PRESENT:
            parts.append(key)
        else:
            parts.append(f"{key}={value}")
    return ",".join(parts)


def snapshot(cluster: Cluster, namespace: str, name: str) -> Snapshot:
    """The service, its children, its server pods and its warm path's pods, listed with the
    watches' kinds and labels (one request per distinct selector)."""
    kinds_by_selector: dict[str, list[str]] = {}
    for group, version, plural, labels in CHILD_KINDS:
        resource = f"{plural}.{version}.{group}" if group else plural
        kinds_by_selector.setdefault(selector(labels, name), []).append(resource)
    children: list[dict[str, Any]] = []
    for sel, resources in kinds_by_selector.items():
        children += cluster.get_json(",".join(resources), "-n", namespace, "-l", sel)["items"]
    pods = cluster.get_json("pods", "-n", namespace, "-l", selector(SERVER_PODS, name))
    # The warm path's pods (the watch's label filter is a callable: its values spelled out).
    components = ",".join(sorted(WARM_PATH_COMPONENTS))
    warm = f"{names.LABEL_NAME}={names.APP_NAME},{names.LABEL_INSTANCE}={name}"
    warm_pods = cluster.get_json(
        "pods", "-n", namespace, "-l", f"{warm},{names.LABEL_COMPONENT} in ({components})"
    )
    return Snapshot(
        body=cluster.get_json("evs", name, "-n", namespace),
        children=children,
        pods=pods["items"],
        warm_pods=warm_pods["items"],
    )


class InProcess:
    """One Reconciler whose clock reads ``self.now``; ``reconcile`` runs one pass of a service
    from a fresh snapshot and keeps the Events it posted in ``events`` (type, reason, message,
    service)."""

    def __init__(self, cluster: Cluster, namespace: str, now: datetime) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.now = now
        settings = OperatorSettings(
            server_image="emotivoice/server:test",
            extra_tolerations=(KWOK_TOLERATION,),
            ask_servers=False,  # no server answers here; the pods' states are enough
        )
        api = config.new_client_from_config(str(cluster.kubeconfig))
        self.reconciler = Reconciler(api, settings, clock=lambda: self.now)
        self.events: list[tuple[str, str, str, str]] = []

    def reconcile(self, name: str) -> Outcome:
        def post(type_: str, reason: str, message: str) -> None:
            self.events.append((type_, reason, message, name))

        outcome = self.reconciler.reconcile(snapshot(self.cluster, self.namespace, name), post)
        assert isinstance(outcome, Outcome)
        return outcome

    def status(self, name: str) -> dict[str, Any]:
        return self.cluster.get_json("evs", name, "-n", self.namespace).get("status") or {}

    def until(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], Any],
        what: str,
        timeout: float = 90,
    ) -> Any:
        """Runs passes of ``name`` (at ``self.now``) until ``predicate(status)`` is truthy, as the
        operator's watches would while the cluster moves on; returns that value."""

        def passed() -> Any:
            self.reconcile(name)
            return predicate(self.status(name))

        return wait_for(passed, timeout=timeout, interval=1, what=what)

    def reasons(self, name: str, reason: str) -> list[tuple[str, str]]:
        """(type, message) of the Events of ``reason`` posted for ``name``."""
        return [(t, m) for t, r, m, n in self.events if n == name and r == reason]
