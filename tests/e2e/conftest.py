"""Fixtures of the end-to-end suite: the real node, our images, the chart, an S3 server, a model.

Everything here is real: the operator runs as a pod from the image hack/images.sh built, the
model comes from versitygw running as a pod, the server pods are real containers probed by a
real kubelet. Where the machine cannot run the real node, every test here is skipped with the
reason (shown in pytest's summary), never silently.

The operator installed here watches only the ``evs-e2e-*`` namespaces, so neither a demo's
operator nor the integration tests' ever meets it on the same service. The fixtures are still
module-scoped (tests/e2e has no __init__.py, and pytest then keeps a "package" fixture to the
session's end): nothing of the e2e suite stays up while the integration tests run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support import realnode
from tests.support.cluster import Cluster
from tests.support.helm import install_operator, uninstall_operator
from tests.support.operator_process import install_crd
from tests.support.services import PV_NAMESPACE_LABEL
from tests.support.store import ModelStore, credentials_secret, deploy_model_store

RELEASE = "evs-e2e"
SYSTEM_NAMESPACE = "evs-e2e-system"
# The tests' namespaces, and the only ones their operator watches.
NAMESPACE_PREFIX = "evs-e2e-"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="module")
def real_cluster(cluster: Cluster) -> Cluster:
    reason = realnode.missing_reason(cluster)
    if reason:
        pytest.skip(reason)
    return cluster


@pytest.fixture(scope="module")
def images(real_cluster: Cluster) -> dict[str, str]:
    """Our images in the node's registry (built by `make test` before pytest; seconds here)."""
    return realnode.build_images()


@pytest.fixture(scope="module")
def operator_release(real_cluster: Cluster, images: dict[str, str]) -> Iterator[str]:
    install_crd(real_cluster)
    install_operator(
        real_cluster, images, RELEASE, SYSTEM_NAMESPACE, watch=(f"{NAMESPACE_PREFIX}*",)
    )
    yield SYSTEM_NAMESPACE
    uninstall_operator(real_cluster, RELEASE, SYSTEM_NAMESPACE)
    _delete_namespace(real_cluster, SYSTEM_NAMESPACE)


@pytest.fixture(scope="module")
def model_store(
    real_cluster: Cluster, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelStore]:
    store = deploy_model_store(real_cluster, images["s3"], tmp_path_factory.mktemp("e2e-model"))
    yield store
    _delete_namespace(real_cluster, store.spec.namespace)


def _delete_namespace(cluster: Cluster, name: str) -> None:
    """Deletes a module's namespace and waits until it is gone (bounded): the next module
    installs the same release and store into a namespace of the same name, and neither Helm nor
    kubectl can create in one that is still terminating."""
    cluster.kubectl(
        "delete", "namespace", name, "--wait=true", "--timeout=180s", check=False, timeout=200
    )


@pytest.fixture
def e2e_namespace(real_cluster: Cluster) -> Iterator[str]:
    name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:6]}"
    real_cluster.kubectl("create", "namespace", name)
    real_cluster.kubectl(
        "wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s"
    )
    # The S3 credentials, as a user would create them next to the EmotiVoiceService.
    credentials_secret(real_cluster, name)
    yield name
    # Not waiting: the pods take their grace period to stop, in the background.
    real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    real_cluster.kubectl("delete", "pv", "-l", f"{PV_NAMESPACE_LABEL}={name}", check=False)
