"""The HPA really scales: metrics-server reads the real node's kubelet, load through the Service
raises the replicas above the warm floor, a window's floor lifts the HPA above what the load
left, and replicas leave after the window one a minute, never within scaleDownDelaySeconds of the
load going low.

The times are printed (docs/benchmarks.md quotes them). Bounded: the load has a count and a
time limit, every wait a timeout.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.operator_process import wait_for
from tests.support.services import create_service, evs_manifest
from tests.support.store import ModelStore
from tests.support.traffic import SteadyClient, summary
from tests.support.workload import pod_ready, server_pods

pytestmark = pytest.mark.timeout(1200)

NAME = "tts-hpa"
# spec.replicas.scaleDownDelaySeconds: short, so the test sees it end, and longer than the time
# from the load's end to the window's lead (at most about 130 s here), so it holds the replicas.
DELAY_S = 180
TARGET_CPU = 50


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-hpa-caches")


def hpa(cluster: Cluster, ns: str) -> dict[str, Any]:
    return cluster.get_json("hpa", NAME, "-n", ns)


def ready_count(cluster: Cluster, ns: str) -> int:
    return sum(
        1
        for p in server_pods(cluster, ns, NAME)
        if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
    )


def cpu_utilization(cluster: Cluster, ns: str) -> int | None:
    """The HPA's current average CPU utilization (%), None while it reads `<unknown>`."""
    for metric in hpa(cluster, ns).get("status", {}).get("currentMetrics") or []:
        current = (metric.get("resource") or {}).get("current") or {}
        if "averageUtilization" in current:
            return int(current["averageUtilization"])
    return None


def workload_replicas(cluster: Cluster, ns: str) -> int:
    return int(hpa(cluster, ns).get("status", {}).get("desiredReplicas") or 0)


def test_load_scales_above_the_floor_a_window_lifts_it_and_replicas_leave_after_the_delay(
    real_cluster: Cluster,
    operator_release: str,
    model_store: ModelStore,
    e2e_namespace: str,
    cache_root: Path,
) -> None:
    ns = e2e_namespace
    c = real_cluster
    manifest = evs_manifest(
        NAME,
        model_store,
        replicas={
            "min": 1,
            "max": 2,
            "targetCPUUtilizationPercentage": TARGET_CPU,
            "scaleDownDelaySeconds": DELAY_S,
        },
    )
    create_service(c, ns, manifest, cache_root)
    t_created = time.monotonic()
    # The metrics API answers: the HPA reads a utilization, not `<unknown>`.
    idle = wait_for(
        lambda: cpu_utilization(c, ns) is not None and (cpu_utilization(c, ns), 1),
        timeout=120, interval=3, what="the HPA reading CPU from metrics-server",
    )[0]  # fmt: skip
    t_metrics = time.monotonic() - t_created
    svc = c.get_json("service", NAME, "-n", ns)
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"

    # 1. Load through the Service: the HPA scales above the warm floor (1) to replicas.max (2).
    load = SteadyClient(
        url, "/v1/audio/speech", period=0.0, workers=3, limit_s=420, max_requests=20_000,
        timeout=60,
    ).start()  # fmt: skip
    t_load = time.monotonic()
    try:
        wait_for(lambda: workload_replicas(c, ns) >= 2, timeout=240, interval=2,
                 what="the HPA scaling up on CPU")  # fmt: skip
        t_decided = time.monotonic() - t_load
        busy = cpu_utilization(c, ns)
        wait_for(lambda: ready_count(c, ns) >= 2, timeout=240, interval=2,
                 what="two Ready replicas")  # fmt: skip
        t_two = time.monotonic() - t_load
    finally:
        outcomes = load.stop()
    t_stop = time.monotonic()
    assert hpa(c, ns)["spec"]["minReplicas"] == 1  # above the floor: the load's doing
    load_failed = [o for o in outcomes if not o.ok]

    # The load is gone; the metric drops below the target while the HPA keeps 2 (its delay).
    wait_for(lambda: (u := cpu_utilization(c, ns)) is not None and u < TARGET_CPU,
             timeout=120, interval=3, what="CPU below the target after the load")  # fmt: skip

    # 2. A window whose floor (3) is above the HPA's count (2); replicas.max rises with it.
    now = datetime.now(UTC)
    start = (now + timedelta(seconds=130)).replace(second=0, microsecond=0)
    window = {"name": "peak", "cron": f"{start.minute} {start.hour} * * *",
              "duration": "1m", "leadTime": "1m", "replicas": 3}  # fmt: skip
    patch = {"spec": {"replicas": {"max": 3}, "warmPool": {"timeZone": "UTC", "windows": [window]}}}
    c.kubectl("patch", "evs", NAME, "-n", ns, "--type=merge", "-p", json.dumps(patch))
    lead_at = start - timedelta(minutes=1)
    # Until the lead, the HPA holds 2 though the CPU is low: the scale-down delay.
    held: list[int] = []
    while datetime.now(UTC) < lead_at - timedelta(seconds=5):
        held.append(workload_replicas(c, ns))
        time.sleep(3)
    assert held and min(held) == 2, held
    floor_up = wait_for(
        lambda: hpa(c, ns)["spec"]["minReplicas"] == 3 and datetime.now(UTC),
        timeout=(lead_at - datetime.now(UTC)).total_seconds() + 60, interval=1,
        what="the window's floor on the HPA",
    )  # fmt: skip
    wait_for(lambda: ready_count(c, ns) >= 3, timeout=180, interval=2, what="three Ready replicas")
    three_at = datetime.now(UTC)
    assert three_at <= start + timedelta(seconds=30), (three_at, start)

    # 3. After the window the floor drops to 1; replicas leave one a minute, and none before
    # the window's end nor within the delay of the load going low.
    end = start + timedelta(minutes=1)
    wait_for(lambda: hpa(c, ns)["spec"]["minReplicas"] == 1, interval=2,
             timeout=(end - datetime.now(UTC)).total_seconds() + 90, what="the floor back to 1")  # fmt: skip
    steps: list[tuple[datetime, int]] = []
    deadline = time.monotonic() + DELAY_S + 240
    while time.monotonic() < deadline:
        n = workload_replicas(c, ns)
        if not steps or steps[-1][1] != n:
            steps.append((datetime.now(UTC), n))
        if n == 1:
            break
        time.sleep(2)
    assert steps[-1][1] == 1, steps
    downs = [t for t, n in steps if n < 3]
    first_down = downs[0]
    assert first_down >= end, (first_down, end)
    stop_wall = datetime.now(UTC) - timedelta(seconds=time.monotonic() - t_stop)
    assert first_down >= stop_wall + timedelta(seconds=DELAY_S - 5), (first_down, stop_wall)
    if len(downs) > 1:
        assert (downs[1] - downs[0]).total_seconds() >= 55, steps  # one pod per 60 s

    print(
        f"\nHPA e2e: metrics API read {t_metrics:.0f} s after Ready (idle {idle}%); load "
        f"(3 clients back to back: {summary(outcomes)}) -> HPA decided 2 after {t_decided:.0f} s "
        f"(CPU {busy}% of request), 2 Ready after {t_two:.0f} s; held 2 with the load gone "
        f"{len(held) * 3} s (delay {DELAY_S} s); floor 3 on the HPA "
        f"{(floor_up - lead_at).total_seconds():+.0f} s from the lead, 3 Ready "
        f"{(three_at - start).total_seconds():+.0f} s from the window start; after the window "
        f"first replica left {(first_down - end).total_seconds():.0f} s after its end "
        f"({(first_down - stop_wall).total_seconds():.0f} s after the load), steps "
        f"{[(round((t - end).total_seconds()), n) for t, n in steps]}"
    )
    assert not load_failed, summary(outcomes)
