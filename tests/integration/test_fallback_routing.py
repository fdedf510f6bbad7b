"""The fallback pool on a real control plane: the Service follows the own pool's Ready pods,
each switch is an Event and a status, and what cannot stand in is refused naming the field.

KWOK's pods turn Ready at once and run no server, so the wake (which reads the fallback's
request counter) is shown on the real node (tests/e2e/test_fallback.py); the routing and
refusals here are the operator's own and the API server's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import OperatorProcess, running_operator, wait_for

pytestmark = pytest.mark.cluster

INSTANCE = "app.kubernetes.io/instance"


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


def _service(name: str, minimum: int, fallback: str | None = None) -> dict[str, Any]:
    body = valid_resource(name)
    body["spec"].pop("warmPool")
    body["spec"]["replicas"] = {"min": minimum, "max": 2}
    # No claims to provide: the simulated pods start at once.
    body["spec"]["model"]["cache"] = {"scope": "Ephemeral"}
    if fallback:
        body["spec"]["fallback"] = {"service": fallback}
    return body


def _routing(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    status = cluster.get_json("evs", name, "-n", namespace).get("status") or {}
    return status.get("routing") or {}


def _selected(cluster: Cluster, namespace: str, name: str) -> str:
    return cluster.get_json("service", name, "-n", namespace)["spec"]["selector"][INSTANCE]


def _routed_events(cluster: Cluster, namespace: str, name: str) -> list[str]:
    events = cluster.get_json(
        "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return [e["message"] for e in events if e["reason"] == "Routed"]


def test_the_service_follows_the_own_pool_and_stands_on_the_fallback_at_zero(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    # The primary first: its fallback does not exist yet, so its own pods stay selected.
    cluster.apply(_service("tts-gpu", 0, fallback="tts-cpu"), namespace=namespace)
    note = wait_for(lambda: _routing(cluster, namespace, "tts-gpu").get("note"), timeout=60,
                    what="the missing fallback noted")  # fmt: skip
    assert "does not exist" in note and _selected(cluster, namespace, "tts-gpu") == "tts-gpu"
    # The fallback appears: the primary's pass follows at once (the fallbacks index), not at
    # the timer's horizon (20 periods of 3 s here).
    cluster.apply(_service("tts-cpu", 1), namespace=namespace)
    wait_for(lambda: _routing(cluster, namespace, "tts-gpu").get("pool") == "tts-cpu", timeout=20,
             what="routing to the fallback once it exists")  # fmt: skip
    assert _selected(cluster, namespace, "tts-gpu") == "tts-cpu"
    assert _routing(cluster, namespace, "tts-gpu")["reason"] == "Fallback"
    wide = cluster.kubectl("get", "evs", "tts-gpu", "-n", namespace, "-o", "wide").stdout
    assert "SERVING" in wide and "tts-cpu" in wide
    wait_for(lambda: _routed_events(cluster, namespace, "tts-gpu"), what="a Routed event")
    # The fallback itself routes nowhere else: it has no fallback, so no routing status.
    assert _routing(cluster, namespace, "tts-cpu") == {}

    # A pod of its own Ready: traffic comes back.
    cluster.apply(_service("tts-gpu", 1, fallback="tts-cpu"), namespace=namespace)
    wait_for(lambda: _selected(cluster, namespace, "tts-gpu") == "tts-gpu", timeout=90,
             what="the Service back on the own pool")  # fmt: skip
    back = _routing(cluster, namespace, "tts-gpu")
    assert back["pool"] == "tts-gpu" and back["reason"] == "Own"
    messages = wait_for(
        lambda: len(m := _routed_events(cluster, namespace, "tts-gpu")) >= 2 and m,
        what="a second Routed event",
    )
    assert any("now sends traffic to tts-gpu's pods" in m for m in messages)

    # Back to zero: once the last own pod is gone, the fallback again.
    cluster.apply(_service("tts-gpu", 0, fallback="tts-cpu"), namespace=namespace)
    wait_for(lambda: _selected(cluster, namespace, "tts-gpu") == "tts-cpu", timeout=90,
             what="the Service on the fallback again")  # fmt: skip


def test_a_fallback_that_cannot_stand_in_is_refused_naming_the_field(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    # The API server refuses the service itself and another namespace (the CRD's rules).
    for target, words in (
        ("tts-self", "names this service itself"),
        ("other/tts-cpu", "give its name alone, not NAMESPACE/NAME"),
    ):
        refused = cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", check=False,
            input=json.dumps(_service("tts-self", 0, fallback=target)),
        )  # fmt: skip
        assert refused.returncode != 0 and "spec.fallback.service" in refused.stderr, refused
        assert words in refused.stderr

    # A chain (and so a cycle) is the operator's to refuse: it needs the other object.
    cluster.apply(_service("tts-a", 0, fallback="tts-b"), namespace=namespace)
    cluster.apply(_service("tts-b", 1, fallback="tts-a"), namespace=namespace)
    status = wait_for(
        lambda: (s := cluster.get_json("evs", "tts-a", "-n", namespace).get("status") or {})
        .get("phase") == "Failed" and s,
        timeout=90, what="the cycle refused",
    )  # fmt: skip
    assert "spec.fallback.service" in status["message"] and "(a cycle)" in status["message"]
