"""The Helm chart installed for real with our images: the operator runs as a pod on the real
node (the end-to-end tests and the cold-start benchmark)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import Any

from tests.support.cluster import REPO, Cluster, ClusterError, build_binaries
from tests.support.realnode import REAL_NODE_TOLERATION, node_facts

CHART = REPO / "charts" / "emotivoice-operator"


def install_operator(
    cluster: Cluster,
    images: dict[str, str],
    release: str,
    namespace: str,
    watch: tuple[str, ...] = (),
    timer_s: int = 5,
    extra_values: Mapping[str, Any] | None = None,
) -> None:
    """The Helm chart for real, with our images: the operator runs as a pod on the real node
    and watches only the namespaces matching ``watch`` (kopf globs), so it never reconciles a
    demo's services, nor the demo's operator its. `images` needs "server-cpu" (this node has
    no GPU); "server" (CUDA) when it was built. ``extra_values`` go over the rest (top-level
    keys replaced): e.g. ``replicaCount: 2``, ``peering: {enabled: true}`` and
    ``watchNamespaces: [NAME]`` with no ``watch`` (the chart refuses peering with patterns)."""
    helm = build_binaries("helm") / "helm"
    operator_repo, operator_tag = images["operator"].rsplit(":", 1)
    server_repo, cpu_tag = images["server-cpu"].rsplit(":", 1)
    gpu_repo, gpu_tag = images.get("server", images["server-cpu"]).rsplit(":", 1)
    assert gpu_repo == server_repo, "the chart has one repository for both variants"
    values = {
        "image": {"repository": operator_repo, "tag": operator_tag},
        "serverImage": {"repository": server_repo, "tag": gpu_tag, "cpuTag": cpu_tag},
        "timerIntervalSeconds": timer_s,
        **({"watchNamespacePatterns": list(watch)} if watch else {}),
        "tolerations": [REAL_NODE_TOLERATION],
        "extraPodTolerations": [REAL_NODE_TOLERATION],
        # The warm path's pods run the node's own sandbox image (nothing to pull).
        "pauseImage": node_facts()["PAUSE_IMAGE"],
        **(extra_values or {}),
    }
    result = subprocess.run(
        [str(helm), "upgrade", "--install", release, str(CHART), "--namespace", namespace,
         "--create-namespace", "--kubeconfig", str(cluster.kubeconfig), "--wait",
         "--timeout", "5m", "--values", "-"],
        input=json.dumps(values), check=False, capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    if result.returncode != 0:
        raise ClusterError(f"helm upgrade --install {release} failed: {result.stderr.strip()}")


def uninstall_operator(cluster: Cluster, release: str, namespace: str) -> None:
    helm = build_binaries("helm") / "helm"
    subprocess.run(
        [str(helm), "uninstall", release, "--namespace", namespace, "--wait",
         "--kubeconfig", str(cluster.kubeconfig), "--timeout", "2m"],
        check=False, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
