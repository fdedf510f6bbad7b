"""The real-node benchmarks' common frame: the cluster with its real node, our images built, the
CRD and one operator release (the Helm chart, as users install it), and on the way out every
object the bench made removed, even when it failed half-way, so the next bench or test session
finds the node as it was.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support import realnode
from tests.support.cluster import Cluster, cluster_session
from tests.support.helm import install_operator, uninstall_operator
from tests.support.operator_process import install_crd
from tests.support.services import PV_NAMESPACE_LABEL


class NoRealNode(RuntimeError):
    """This machine cannot run the real node (the message says why): the bench cannot run."""


@dataclass(frozen=True)
class BenchRelease:
    """Where a bench's operator runs and what it made: its release and system namespace, the
    namespaces it watches (their cache volumes are labelled with them), and the other
    namespaces to delete after it (the model store's)."""

    release: str
    system_namespace: str
    watch: tuple[str, ...]
    also_delete: tuple[str, ...] = ()


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def install(cluster: Cluster, images: dict[str, str], bench: BenchRelease) -> None:
    """The CRD and the bench's operator release."""
    install_crd(cluster)
    install_operator(cluster, images, bench.release, bench.system_namespace, watch=bench.watch)


def remove(cluster: Cluster, bench: BenchRelease) -> None:
    """Every namespace the bench made, the cache volumes of the watched ones, the operator
    release and its namespace, each namespace waited for (bounded): the next model's or bench's
    run makes one of the same name at once, and neither Helm nor kubectl can create in one that
    is still terminating."""
    for ns in (*bench.watch, *bench.also_delete):
        _delete_namespace(cluster, ns)
        cluster.kubectl("delete", "pv", "-l", f"{PV_NAMESPACE_LABEL}={ns}", check=False)
    uninstall_operator(cluster, bench.release, bench.system_namespace)
    _delete_namespace(cluster, bench.system_namespace)


def _delete_namespace(cluster: Cluster, ns: str) -> None:
    cluster.kubectl(
        "delete", "namespace", ns, "--wait=true", "--timeout=180s", check=False, timeout=200
    )  # fmt: skip


@contextlib.contextmanager
def real_node_bench(name: str) -> Iterator[tuple[Cluster, dict[str, str]]]:
    """The cluster (started for the bench when none runs) with the real node, and our images
    built into its registry; raises NoRealNode, naming ``name`` and the reason, where the node
    cannot run."""
    with cluster_session() as cluster:
        reason = realnode.missing_reason(cluster)
        if reason:
            raise NoRealNode(f"{name} needs the real node: {reason}")
        yield cluster, realnode.build_images(on_line=_log)


@contextlib.contextmanager
def operator_bench(name: str, bench: BenchRelease) -> Iterator[tuple[Cluster, dict[str, str]]]:
    """``real_node_bench`` with the bench's operator installed, and everything it made removed
    on the way out."""
    with real_node_bench(name) as (cluster, images):
        install(cluster, images, bench)
        try:
            yield cluster, images
        finally:
            remove(cluster, bench)
