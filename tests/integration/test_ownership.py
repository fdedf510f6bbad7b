"""Issue 16 on a real control plane: the operator never adopts, rewrites or deletes an object
that is not its child, honours only bounded warm requests, and can do no more than it renders.

The operator runs under the Helm chart's RBAC and admission policy (tests/support/operator_process.py).
Each test works in its own namespace.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import (
    ACCOUNT,
    SYSTEM_NAMESPACE,
    OperatorProcess,
    running_operator,
    wait_for,
)

pytestmark = pytest.mark.cluster

AS_OPERATOR = f"--as=system:serviceaccount:{SYSTEM_NAMESPACE}:{ACCOUNT}"
OUR_LABELS = {
    "app.kubernetes.io/instance": "",  # filled per test
    "app.kubernetes.io/managed-by": "emotivoice-operator",
}


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


def _evs(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", namespace)


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return _evs(cluster, namespace, name).get("status") or {}


def _exists(cluster: Cluster, kind: str, name: str, namespace: str) -> bool:
    return cluster.kubectl("get", kind, name, "-n", namespace, check=False).returncode == 0


def _events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return cluster.get_json(
        "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]


def _utc_window(name: str, start: datetime, hours: int, replicas: int) -> dict[str, Any]:
    return {
        "name": name,
        "start": start.strftime("%H:%M"),
        "end": (start + timedelta(hours=hours)).strftime("%H:%M"),
        "leadTime": "1m",
        "replicas": replicas,
    }


def _cronjob(name: str, labels: dict[str, str]) -> dict[str, Any]:
    pod = {
        "restartPolicy": "Never",
        "containers": [{"name": "report", "image": "busybox", "command": ["true"]}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": pod}}},
        },
    }


def test_a_users_same_named_objects_are_reported_not_adopted(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """A Service and a ServiceAccount that existed first keep their content and survive the
    EmotiVoiceService's deletion; the conflict is an Event and a condition naming them."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "tts-own"},
        "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "tts-own-warm",
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/legacy"},
        },
    }
    cluster.apply([service, account], namespace=namespace)
    cluster.apply(valid_resource("tts-own"), namespace=namespace)  # a window: SA tts-own-warm

    status = wait_for(
        lambda: (s := _status(cluster, namespace, "tts-own")).get("phase") == "Failed" and s,
        timeout=60,
        what="phase Failed for the name conflict",
    )
    assert "Service tts-own" in status["message"]
    assert "ServiceAccount tts-own-warm" in status["message"]
    spec_valid = next(c for c in status["conditions"] if c["type"] == "SpecValid")
    assert spec_valid["status"] == "False" and spec_valid["reason"] == "NameConflict"
    assert "Service tts-own" in spec_valid["message"]
    events = _events(cluster, namespace, "tts-own")
    assert any(e["reason"] == "NameConflict" and e["type"] == "Warning" for e in events)

    live_service = cluster.get_json("service", "tts-own", "-n", namespace)
    assert live_service["spec"]["selector"] == {"app": "legacy"}
    assert [p["port"] for p in live_service["spec"]["ports"]] == [80]
    assert "ownerReferences" not in live_service["metadata"]
    live_account = cluster.get_json("serviceaccount", "tts-own-warm", "-n", namespace)
    assert "ownerReferences" not in live_account["metadata"]
    assert live_account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("legacy")
    # Nothing else was created either (an HPA would scale, a RoleBinding would bind, theirs).
    assert not _exists(cluster, "rolebinding", "tts-own-warm", namespace)
    assert not _exists(cluster, "deployment", "tts-own", namespace)
    assert not _exists(cluster, "statefulset", "tts-own", namespace)

    # Delete the resource; a ConfigMap it owns shows when garbage collection has acted.
    uid = _evs(cluster, namespace, "tts-own")["metadata"]["uid"]
    witness = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "gc-witness",
            "ownerReferences": [
                {"apiVersion": "tts.emotivoice.io/v1alpha1", "kind": "EmotiVoiceService",
                 "name": "tts-own", "uid": uid}
            ],
        },
    }  # fmt: skip
    cluster.apply(witness, namespace=namespace)
    cluster.kubectl("delete", "evs", "tts-own", "-n", namespace, "--wait=true", timeout=60)
    wait_for(
        lambda: not _exists(cluster, "configmap", "gc-witness", namespace),
        timeout=90,
        what="garbage collection of the resource's dependents",
    )
    assert _exists(cluster, "service", "tts-own", namespace)
    assert _exists(cluster, "serviceaccount", "tts-own-warm", namespace)


def test_the_conflict_clears_once_the_name_is_free(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    legacy = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "tts-free"},
        "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]},
    }
    cluster.apply(legacy, namespace=namespace)
    cluster.apply(valid_resource("tts-free"), namespace=namespace)
    wait_for(
        lambda: _status(cluster, namespace, "tts-free").get("phase") == "Failed",
        what="the conflict reported",
    )
    cluster.kubectl("delete", "service", "tts-free", "-n", namespace)
    wait_for(
        lambda: _exists(cluster, "statefulset", "tts-free", namespace),
        timeout=60,
        what="the children created once the name is free",
    )
    service = wait_for(
        lambda: cluster.get_json("service", "tts-free", "-n", namespace), what="our Service"
    )
    assert service["spec"]["selector"]["app.kubernetes.io/instance"] == "tts-free"
    assert service["metadata"]["ownerReferences"][0]["kind"] == "EmotiVoiceService"


def test_pruning_deletes_only_children_with_our_owner_reference(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = valid_resource("tts-prune")
    cluster.apply(body, namespace=namespace)
    wait_for(
        lambda: _exists(cluster, "cronjob", "tts-prune-warm-morning", namespace),
        what="the window's CronJob",
    )
    # A user's CronJob carrying only our two labels.
    labels = {**OUR_LABELS, "app.kubernetes.io/instance": "tts-prune"}
    cluster.apply(_cronjob("tts-prune-report", labels), namespace=namespace)
    # Rename the window: the operator prunes its old CronJob (proof that pruning ran).
    body["spec"]["warmPool"]["windows"][0]["name"] = "noon"
    cluster.apply(body, namespace=namespace)
    wait_for(
        lambda: not _exists(cluster, "cronjob", "tts-prune-warm-morning", namespace),
        timeout=60,
        what="the renamed window's old CronJob pruned",
    )
    assert _exists(cluster, "cronjob", "tts-prune-warm-noon", namespace)
    assert _exists(cluster, "cronjob", "tts-prune-report", namespace)


def test_warm_requests_are_bounded_by_the_spec(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    later = datetime.now(UTC) + timedelta(hours=6)
    body = valid_resource("tts-bound")
    body["spec"]["replicas"] = {"min": 1, "max": 3}
    body["spec"]["warmPool"] = {"timeZone": "UTC", "windows": [_utc_window("peak", later, 2, 2)]}
    cluster.apply(body, namespace=namespace)
    wait_for(
        lambda: cluster.get_json("hpa", "tts-bound", "-n", namespace)["spec"]["minReplicas"] == 1,
        what="the HPA at replicas.min",
    )
    runaway = {"replicas": 500, "expiresAt": "2099-01-01T00:00:00Z"}
    patched_at = datetime.now(UTC)
    cluster.kubectl(
        "patch", "evs", "tts-bound", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"warmRequests": {"nonexistent-window": runaway, "peak": runaway}}}),
    )  # fmt: skip

    requests = wait_for(
        lambda: (
            (r := _status(cluster, namespace, "tts-bound").get("warmRequests") or {}).keys()
            == {"peak"}
            and r["peak"]["replicas"] == 2
            and r
        ),
        timeout=60,
        what="the requests rewritten to their bounds",
    )
    expires = datetime.fromisoformat(requests["peak"]["expiresAt"].replace("Z", "+00:00"))
    # Outside the window: at most lead + duration from when the operator saw it.
    assert expires <= datetime.now(UTC) + timedelta(hours=2, minutes=1)
    assert expires >= patched_at + timedelta(hours=1, minutes=59)
    hpa = wait_for(
        lambda: (
            (h := cluster.get_json("hpa", "tts-bound", "-n", namespace))["spec"]["minReplicas"] == 2
            and h
        ),
        what="the floor at the window's replicas",
    )
    assert hpa["spec"]["maxReplicas"] == 3
    assert cluster.get_json("statefulset", "tts-bound", "-n", namespace)["spec"]["replicas"] <= 3
    assert _status(cluster, namespace, "tts-bound")["warmFloor"] == 2

    # The schema itself refuses a request no window can hold.
    refused = cluster.kubectl(
        "patch", "evs", "tts-bound", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"warmRequests": {"peak": {"replicas": 5000, "expiresAt": "2099-01-01T00:00:00Z"}}}}),
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "replicas" in refused.stderr


def _as_operator(cluster: Cluster, *args: str, input: str | None = None) -> str:
    result = cluster.kubectl(*args, AS_OPERATOR, input=input, check=False)
    assert result.returncode != 0, f"the operator's identity was allowed: kubectl {' '.join(args)}"
    return result.stderr


def test_the_operators_identity_can_write_only_what_it_renders(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = valid_resource("tts-lp")
    body["spec"]["model"]["cache"] = {"scope": "Shared"}  # a Deployment, the claim tts-lp-model
    cluster.apply(body, namespace=namespace)
    deployment = wait_for(
        lambda: cluster.get_json("deployment", "tts-lp", "-n", namespace), what="our Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    owner = deployment["metadata"]["ownerReferences"]

    def create(manifest: dict[str, Any]) -> str:
        return _as_operator(
            cluster, "create", "-n", namespace, "-f", "-", input=json.dumps(manifest)
        )

    # A Deployment of our shape but running as another ServiceAccount, with the host's disk.
    rogue = json.loads(json.dumps(deployment))
    rogue["metadata"] = {"name": "rogue", "ownerReferences": owner}
    rogue_pod = rogue["spec"]["template"]["spec"]
    rogue_pod["serviceAccountName"] = "builder"
    rogue.pop("status", None)
    assert "ServiceAccount token" in create(rogue)
    rogue_pod.pop("serviceAccountName")
    rogue_pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert "no host namespaces" in create(rogue)
    # The same pod in a StatefulSet (the PerReplica scope's kind) is held to the same rules.
    rogue_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": rogue["metadata"],
        "spec": {
            "selector": rogue["spec"]["selector"],
            "serviceName": "tts-lp",
            "template": rogue["spec"]["template"],
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "model-cache"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    assert "no host namespaces" in create(rogue_set)
    # Without an owner: not ours to create.
    rogue_pod["volumes"].pop()
    rogue["metadata"] = {"name": "rogue"}
    assert "EmotiVoiceService owns" in create(rogue)
    # A Role beyond the pre-warm job's (the operator itself holds these verbs, so RBAC's
    # escalation check alone would let it through).
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "x-warm", "ownerReferences": owner},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}],
    }
    assert "pre-warm job" in create(role)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "x-warm", "ownerReferences": owner},
        # Its own ClusterRole: RBAC lets it bind what it holds, to anyone.
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ACCOUNT,
        },
        "subjects": [{"kind": "ServiceAccount", "name": "x-warm", "namespace": namespace}],
    }
    assert "binds only" in create(binding)
    # A user's objects: neither changed nor deleted by the operator's identity.
    labels = {**OUR_LABELS, "app.kubernetes.io/instance": "tts-lp"}
    cluster.apply(_cronjob("users-job", labels), namespace=namespace)
    assert "EmotiVoiceService owns" in _as_operator(
        cluster, "delete", "cronjob", "users-job", "-n", namespace
    )
    assert "EmotiVoiceService owns" in _as_operator(
        cluster, "label", "cronjob", "users-job", "-n", namespace, "taken=yes"
    )
    # A user's claim, even one named like a replica's cache: not the operator's to delete.
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "model-cache-tts-lp-7"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.apply(claim, namespace=namespace)
    assert "EmotiVoiceService owns" in _as_operator(
        cluster, "delete", "pvc", "model-cache-tts-lp-7", "-n", namespace
    )
    for verb in ("escalate", "bind"):
        allowed = cluster.kubectl(
            "auth", "can-i", verb, "roles", "-n", namespace, AS_OPERATOR, check=False
        ).stdout.strip()
        assert allowed == "no", verb


def test_a_field_held_by_another_writer_is_reported_once(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(valid_resource("tts-held"), namespace=namespace)
    wait_for(lambda: _exists(cluster, "service", "tts-held", namespace), what="our Service")
    extra = [{"op": "add", "path": "/spec/ports/-", "value": {"name": "extra", "port": 9999}}]
    cluster.kubectl(
        "patch", "service", "tts-held", "-n", namespace, "--type=json", "-p", json.dumps(extra)
    )

    def updates() -> int:
        return sum(
            e.get("count") or 1
            for e in _events(cluster, namespace, "tts-held")
            if e["reason"] == "Updated" and "Service tts-held" in e["message"]
        )

    wait_for(lambda: updates() >= 1, timeout=60, what="the Service's update reported")
    events = [e for e in _events(cluster, namespace, "tts-held") if e["reason"] == "Updated"]
    assert any("another writer" in e["message"] for e in events), events
    # Passes that find the held field again must not report it again. Make them happen (the
    # timer brings a settled service back only at its horizon): an annotation on the Service is
    # an event its watch turns into a pass of tts-held. The operator's metrics count them.
    # One each timer period for five periods (a report repeated only some time after the last
    # one shows too), each required to have run.
    passes = operator.passes()
    for i in range(5):
        seen = operator.passes()
        cluster.kubectl(
            "annotate", "service", "tts-held", "-n", namespace, f"evs-test/poke={i}", "--overwrite"
        )
        wait_for(lambda seen=seen: operator.passes() > seen, timeout=30, what="a pass")
        time.sleep(operator.timer_interval)  # spreads the passes; they are awaited above
    assert operator.passes() - passes >= 5
    assert updates() == 1
    # An edit inside the held field (our own port) is still ours to restore.
    ours = [{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 1234}]
    cluster.kubectl(
        "patch", "service", "tts-held", "-n", namespace, "--type=json", "-p", json.dumps(ours)
    )
    wait_for(
        lambda: (
            cluster.get_json("service", "tts-held", "-n", namespace)["spec"]["ports"][0][
                "targetPort"
            ]
            == "http"
        ),
        timeout=60,
        what="our port restored",
    )


def test_the_schema_bounds_the_number_of_warm_requests(cluster: Cluster, namespace: str) -> None:
    """The schema bounds the map itself: no more requests than a spec can have windows."""
    cluster.apply(valid_resource("tts-many"), namespace=namespace)
    many = {f"w{i}": {"replicas": 1, "expiresAt": "2099-01-01T00:00:00Z"} for i in range(21)}
    result = cluster.kubectl(
        "patch", "evs", "tts-many", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"warmRequests": many}}), check=False,
    )  # fmt: skip
    assert result.returncode != 0, "21 warm requests were accepted; the schema allows 20"
    assert "warmRequests" in result.stderr
