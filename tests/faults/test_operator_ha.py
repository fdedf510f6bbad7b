"""Operator HA: two replicas with kopf peering (the chart's `replicaCount: 2`,
`peering.enabled: true`), the active one killed (SIGKILL) in the middle of a window's lead. The
other takes over, nothing is created twice, the window is met.

Simulated nodes, the operators as subprocesses. They authenticate as the cluster's admin here,
not as the chart's ServiceAccount: the tests' chart install watches namespace patterns, which the
chart refuses to combine with peering (kopf's peering object is per namespace).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import faults
from tests.support.cluster import REPO, Cluster
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import OperatorProcess, install_crd, wait_for

pytestmark = pytest.mark.timeout(600)

PEERING = "emotivoice-operator"


@pytest.fixture
def pair(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    install_crd(cluster)
    cluster.kubectl("apply", "-f", str(REPO / "charts/emotivoice-operator/crds/kopf-peering.yaml"))
    cluster.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
        namespace=namespace,
    )
    ops = [
        OperatorProcess(
            cluster.kubeconfig,
            tmp_path / f"operator-{i}.log",
            namespaces=(namespace,),
            peering=PEERING,
        )
        for i in range(2)
    ]
    for op in ops:
        op.start()
        time.sleep(2)  # distinct start times: the older replica leads
    try:
        yield ops
    finally:
        for op in ops:
            op.stop()


def _body(window: dict[str, object] | None) -> dict[str, object]:
    body = valid_resource("tts-ha")
    body["spec"]["replicas"] = {"min": 1, "max": 4}
    body["spec"]["model"]["cache"] = {"scope": "Ephemeral"}
    body["spec"]["warmPool"] = {"timeZone": "UTC", "windows": [window] if window else []}
    if not window:
        body["spec"].pop("warmPool")
    return body


def _active(ops: list[OperatorProcess]) -> OperatorProcess:
    """The one replica that has reconciled; the other says it paused in its favour."""
    passes = [op.passes() for op in ops]
    working = [op for op, n in zip(ops, passes, strict=True) if n > 0]
    assert len(working) == 1, (
        f"{len(working)} replicas reconciling (passes {passes}); "
        f"logs: {[o.log()[-1500:] for o in ops]}"
    )
    standby = next(op for op in ops if op is not working[0])
    # kopf starts a peered operator paused; the standby stays so while the other lives.
    time.sleep(5)
    assert standby.passes() == 0, standby.log()[-1500:]
    assert "Resuming operations" not in standby.log(), standby.log()[-1500:]
    return working[0]


def test_the_active_replica_killed_mid_lead_the_other_takes_over(
    cluster: Cluster, namespace: str, pair: list[OperatorProcess]
) -> None:
    ns = namespace
    window, start = faults.window_at_next_minute(75, replicas=3)
    body = _body(window)
    cluster.apply(body, namespace=ns)
    wait_for(lambda: faults.phase(cluster, ns, "tts-ha") == "Ready", timeout=90, interval=1,
             what="Ready under one of the two replicas")  # fmt: skip
    active = _active(pair)
    standby = next(op for op in pair if op is not active)
    lead_at = start - timedelta(minutes=1)
    # In the middle of the lead: half a minute before the window opens.
    time.sleep(max(0.0, (lead_at - datetime.now(UTC)).total_seconds() + 2))
    assert active.proc is not None
    baseline = standby.passes()
    active.stop(kill=True)
    killed = time.monotonic()
    # A service created as the active replica dies: only the standby can make it.
    fresh = _body(None)
    fresh["metadata"]["name"] = "tts-ha-new"
    cluster.apply(fresh, namespace=ns)
    reached: dict[str, float] = {}
    deadline = time.monotonic() + 180
    windowed_at = None
    while len(reached) < 3 and time.monotonic() < deadline:
        now = time.monotonic() - killed
        if "standby reconciling" not in reached and standby.passes() > baseline:
            reached["standby reconciling"] = now
        if (
            "new service Ready" not in reached
            and faults.phase(cluster, ns, "tts-ha-new") == "Ready"
        ):
            reached["new service Ready"] = now
        if "window replicas Ready" not in reached and faults.ready_pods(cluster, ns, "tts-ha") >= 3:
            reached["window replicas Ready"] = now
            windowed_at = datetime.now(UTC)
        time.sleep(0.5)
    assert len(reached) == 3, (reached, standby.log()[-3000:])
    time.sleep(5)
    counts = [faults.census(cluster, ns, b) for b in (body, fresh)]
    time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds() + 10))
    assert windowed_at is not None
    figures = faults.FaultFigures(
        fault="operator HA: the active replica killed mid-lead",
        environment="simulated nodes",
        recovery_s=round(max(reached.values()), 1),
        converging_recovery_s=round(reached["new service Ready"], 1),
        failed_requests=None,
        requests=None,
        duplicated=sum(c.duplicated for c in counts),
        lost=sum(c.lost for c in counts),
        window_met=windowed_at <= start,
        window_late_s=round((windowed_at - start).total_seconds(), 1),
        window_missed_events=len(faults.window_missed_events(cluster, ns, "tts-ha")),
    )
    print(f"\nHA: the standby took over {reached['standby reconciling']:.1f} s after the kill")
    faults.record(figures)
    assert all(c.clean for c in counts), counts
    assert figures.window_met, figures
