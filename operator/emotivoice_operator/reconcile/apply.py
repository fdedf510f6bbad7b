"""One apply path for every child: server-side apply, skipped when the live object already
holds the rendered values, plus pruning of children the spec no longer asks for."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from emotivoice_operator.reconcile.drift import differences
from emotivoice_operator.render import names

log = logging.getLogger(__name__)

# Kinds a spec change can make unnecessary (a window removed, scale to zero removes the HPA).
# Never the PVC, Deployment or Service: those exist as long as the resource does.
PRUNABLE = (
    ("batch/v1", "CronJob"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("v1", "ServiceAccount"),
)


@dataclass
class ApplyResult:
    kind: str
    name: str
    action: str  # "created", "updated", "unchanged", "deleted"
    drift: list[str]


class Applier:
    def __init__(self, api: client.ApiClient) -> None:
        self._dyn = DynamicClient(api)

    def resource(self, api_version: str, kind: str) -> Any:
        return self._dyn.resources.get(api_version=api_version, kind=kind)

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def apply(self, manifest: dict[str, Any]) -> ApplyResult:
        meta = manifest["metadata"]
        res = self.resource(manifest["apiVersion"], manifest["kind"])
        live = self.get(manifest["apiVersion"], manifest["kind"], meta["name"], meta["namespace"])
        wanted = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
        drift = differences(wanted, live) if live else []
        if live and not drift:
            return ApplyResult(manifest["kind"], meta["name"], "unchanged", [])
        res.server_side_apply(
            body=manifest,
            name=meta["name"],
            namespace=meta["namespace"],
            field_manager=names.FIELD_MANAGER,
            force_conflicts=True,
        )
        action = "updated" if live else "created"
        log.info("%s %s/%s %s %s", action, manifest["kind"], meta["namespace"], meta["name"], drift)
        return ApplyResult(manifest["kind"], meta["name"], action, drift)

    def prune(self, namespace: str, instance: str, keep: list[dict[str, Any]]) -> list[ApplyResult]:
        """Deletes our children of the prunable kinds that the rendered set no longer holds."""
        wanted = {(m["kind"], m["metadata"]["name"]) for m in keep}
        selector = f"{names.LABEL_INSTANCE}={instance},{names.LABEL_MANAGED_BY}={names.MANAGER}"
        results = []
        for api_version, kind in PRUNABLE:
            items = self.resource(api_version, kind).get(
                namespace=namespace, label_selector=selector
            )
            for item in items.items:
                if (kind, item.metadata.name) not in wanted:
                    self.resource(api_version, kind).delete(
                        name=item.metadata.name, namespace=namespace
                    )
                    log.info("deleted %s %s/%s", kind, namespace, item.metadata.name)
                    results.append(ApplyResult(kind, item.metadata.name, "deleted", []))
        return results
