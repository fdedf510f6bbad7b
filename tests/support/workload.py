"""The server workload and cache claims of an EmotiVoiceService, whichever cache scope it runs.

Why: under the PerReplica scope (the default) the server pods belong to a StatefulSet and each
replica has its own claim model-cache-NAME-K; under Shared and Ephemeral to a Deployment, with
the one claim NAME-model or none. Tests that read "the Deployment" or bind "the claim" ask here,
so they keep working under every scope; the names come from the operator's own rules.
"""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.render import names
from tests.support.cluster import Cluster

WORKLOAD_KINDS = ("statefulset", "deployment")


def server_workload(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The server StatefulSet or Deployment of ``name`` (raises when neither exists)."""
    for kind in WORKLOAD_KINDS:
        result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode == 0:
            import json

            return json.loads(result.stdout)
    raise AssertionError(f"no StatefulSet or Deployment {name} in {namespace}")


def server_pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    """The server pods of ``name``, found by the labels both workload kinds give them."""
    selector = (
        f"{names.LABEL_INSTANCE}={name},{names.LABEL_COMPONENT}={names.COMPONENT_SERVER},"
        f"{names.LABEL_NAME}={names.APP_NAME}"
    )
    return cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def cache_claims(body: dict[str, Any], shared: bool | None = None) -> list[str]:
    """The claims the service's pods will mount: NAME-model (Shared), model-cache-NAME-K for
    every ordinal the spec allows (PerReplica), none (Ephemeral). ``shared`` says whether an
    unset scope is kept Shared (its claim existed before); by default it is not."""
    name = body["metadata"]["name"]
    spec = parse_spec(body["spec"])
    scope = spec.model.cache.scope or ("Shared" if shared else "PerReplica")
    if scope == "Shared":
        return [names.model_cache(name)]
    if scope == "PerReplica":
        return [names.replica_cache(name, k) for k in range(spec.replicas.max)]
    return []
