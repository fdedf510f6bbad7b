"""An EmotiVoiceService of the test model (store.py) on the real node, and the hostPath volumes
its cache claims bind to (this cluster has no provisioner)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from emotivoice_operator.render.security import UID as POD_UID
from tests.support.cluster import Cluster
from tests.support.operator_process import wait_for
from tests.support.store import ModelStore
from tests.support.workload import cache_claims

# Label of the PersistentVolumes made for a namespace's claims (deleted with the namespace).
PV_NAMESPACE_LABEL = "evs.local/claim-namespace"


def evs_manifest(name: str, store: ModelStore, **spec: object) -> dict:
    """An EmotiVoiceService of the test model, CPU, one warm replica unless ``spec`` says."""
    body: dict = {
        "model": {
            "source": {
                "uri": store.uri,
                "endpoint": store.endpoint,
                "credentialsSecret": {"name": "s3-credentials"},
                "checksumManifest": "SHA256SUMS",
            },
            # Shared: the end-to-end tests and bench-coldstart delete a pod and time its
            # replacement, a new pod name under a Deployment (a StatefulSet reuses the name).
            "cache": {"size": "1Gi", "scope": "Shared"},
        },
        "server": {
            "resources": {
                "requests": {"cpu": "250m", "memory": "1Gi"},
                "limits": {"memory": "3Gi"},
            },
            "warmup": {"phrases": ["Hello."], "prompts": [""]},
            "startupTimeoutSeconds": 300,
        },
        "replicas": {"min": 1, "max": 3},
    }
    for key, value in spec.items():
        body[key] = value
    return {
        "apiVersion": "tts.emotivoice.io/v1alpha1",
        "kind": "EmotiVoiceService",
        "metadata": {"name": name},
        "spec": body,
    }


def default_resources() -> dict[str, Any]:
    """The server container's requests and limits as the CRD defaults them (its one source),
    with a CPU request of 250m so that the pod fits beside a demo's on the 2-core node."""
    from emotivoice_operator.crd.spec import parse_spec

    res = parse_spec({"model": {"source": {"uri": "s3://m/v1"}}}).server.resources
    requests = {k: str(v) for k, v in res.requests.items()} | {"cpu": "250m"}
    return {"requests": requests, "limits": {k: str(v) for k, v in res.limits.items()}}


def create_service(
    cluster: Cluster,
    namespace: str,
    manifest: dict,
    cache_root: Path,
    timeout: float = 240,
    wait: bool = True,
) -> None:
    """Applies the EmotiVoiceService and gives each cache claim its pods will mount a volume
    (the one NAME-model of the Shared scope, model-cache-NAME-K per replica of the default
    PerReplica scope, reserved before the claims exist); with ``wait``, waits for phase Ready."""
    name = manifest["metadata"]["name"]
    for claim in cache_claims(manifest):
        cache_volume(cluster, namespace, claim, cache_root / namespace / claim)
    cluster.apply(manifest, namespace=namespace)
    if not wait:
        return
    wait_for(
        lambda: (
            cluster.get_json("evs", name, "-n", namespace).get("status", {}).get("phase") == "Ready"
        ),
        timeout=timeout,
        interval=1,
        what=f"EmotiVoiceService {name} Ready",
    )


def cache_volume(cluster: Cluster, namespace: str, claim: str, directory: Path) -> None:
    """A hostPath PersistentVolume bound to ``claim`` (this cluster has no provisioner).

    hostPath volumes get no fsGroup ownership change, so the directory is made the pods' uid's
    (1000, the rendered runAsUser), as a provisioner's volume would be writable to fsGroup.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, POD_UID, POD_UID)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-{claim}"},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(directory), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    cluster.kubectl(
        "label", "pv", f"{namespace}-{claim}", f"{PV_NAMESPACE_LABEL}={namespace}", "--overwrite"
    )
