"""Pytest wiring for tests/support/cluster.py, registered by tests/conftest.py (pytest_plugins).

Why a collection hook: the first build of the Kubernetes binaries takes many minutes, longer than
any per-test timeout, so it runs once after collection (with its progress lines shown), before the
first test's clock starts; the session fixture then only starts the control plane.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support import realnode
from tests.support.cluster import (
    TEST_NAMESPACE_PREFIX,
    Cluster,
    ClusterError,
    build_binaries,
    choose_cluster,
    cluster_session,
)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("cluster") for item in session.items):
        return
    try:
        local = choose_cluster(os.environ).local
    except ClusterError as err:
        raise pytest.UsageError(str(err)) from err
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def show(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    try:
        build_binaries(*(("cluster",) if local else ("kubectl",)), on_line=show)
        # The end-to-end tests' images (and the real node's binaries), before any test's clock
        # starts: the first build takes minutes; later ones are cache hits.
        e2e = any(item.get_closest_marker("e2e") for item in session.items)
        if local and e2e and realnode.node_possible():
            build_binaries("node", on_line=show)
            realnode.build_images(on_line=show)
    except ClusterError as err:
        raise pytest.UsageError(f"{err}; its output is above") from err


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The session's cluster: KUBECONFIG's, or the local control plane started (and stopped) here."""
    with cluster_session() as session_cluster:
        yield session_cluster


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for its finalizers)."""
    name = f"{TEST_NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    # Pods are admitted only once the namespace's default ServiceAccount exists.
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
