"""make soak: the operator on the real node for MINUTES (default 30) under steady, bounded load
while windows open and close every few minutes, server pods are killed at random, the S3 store
blips and the operator restarts. At the end: requests served and failed, window starts met and
missed (each miss with its Event), cold starts by phase (p50/p95), the operator's memory at its
start and end, leaked objects and cache corruption (every claim re-verified).

The operator restarts once, a quarter into the run; the other faults come every 45 to 75 s.
Two services: ``soak-a`` (floor 1, a window every 4 minutes raising it to 2; the client sends
through its Service the whole time) and ``soak-b`` (scaled to zero outside a window every 4
minutes, offset by 2: each occurrence is a start from its cache).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import realnode  # noqa: E402
from tests.support.audit import leaks, reverify_caches  # noqa: E402
from tests.support.cluster import Cluster, cluster_session  # noqa: E402
from tests.support.faults import window_missed_events  # noqa: E402
from tests.support.helm import install_operator, uninstall_operator  # noqa: E402
from tests.support.operator_process import install_crd  # noqa: E402
from tests.support.services import PV_NAMESPACE_LABEL, create_service, evs_manifest  # noqa: E402
from tests.support.store import StoreSpec, credentials_secret, deploy_model_store  # noqa: E402
from tests.support.traffic import SteadyClient, failures  # noqa: E402
from tests.support.workload import pod_ready, server_pods  # noqa: E402

RELEASE = "evs-soak"
SYSTEM_NAMESPACE = "evs-soak-system"
STORE = StoreSpec(
    "s3",
    "evs-soak-s3",
    7070,
    "soak-access-key",
    "soak-secret-key-0123456789",
    "s3://models/soak/v1",
)
BLIP_SECONDS = 20
CHAOS_EVERY_S = (45.0, 75.0)
OPERATOR_SETTLE_S = 60  # memory is sampled this long after the operator's (re)start


@dataclass
class Report:
    minutes: float
    requests: int = 0
    failed: int = 0
    failed_by: dict[str, int] = field(default_factory=dict)
    window_starts_met: int = 0
    window_starts_missed: int = 0
    misses: list[str] = field(default_factory=list)
    cold_starts: int = 0
    cold_start_phases: dict[str, dict[str, float]] = field(default_factory=dict)
    operator_memory_start_mib: float | None = None
    operator_memory_end_mib: float | None = None
    chaos: list[str] = field(default_factory=list)
    leaked: dict[str, list[str]] = field(default_factory=dict)
    caches_checked: int = 0
    cache_files_checked: int = 0
    corrupt: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        met, missed = self.window_starts_met, self.window_starts_missed
        share = met / (met + missed) if met + missed else float("nan")
        mem = (
            f"{self.operator_memory_start_mib:.0f} MiB -> {self.operator_memory_end_mib:.0f} MiB "
            f"({self.operator_memory_end_mib / self.operator_memory_start_mib:.2f}x)"
            if self.operator_memory_start_mib and self.operator_memory_end_mib
            else "not measured"
        )
        phases = "; ".join(
            f"{k} p50 {v['p50']:.1f} s p95 {v['p95']:.1f} s"
            for k, v in sorted(self.cold_start_phases.items())
        )
        return [
            f"soak: {self.minutes:.0f} minutes, chaos: {len(self.chaos)} events "
            f"({', '.join(sorted({c.split(' ')[0] for c in self.chaos}))})",
            f"requests through soak-a's Service: {self.requests} served, {self.failed} failed "
            f"{self.failed_by or ''}",
            f"window starts: {met} met, {missed} missed ({share:.0%} met)",
            *[f"  miss: {m}" for m in self.misses],
            f"cold starts: {self.cold_starts}; {phases}",
            f"operator working set (metrics-server): {mem}",
            f"leaked objects: {sum(len(v) for v in self.leaked.values())} {self.leaked}",
            f"caches re-verified: {self.caches_checked} claims, {self.cache_files_checked} files, "
            f"{len(self.corrupt)} corrupt {self.corrupt[:5]}",
        ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def operator_memory_mib(cluster: Cluster) -> float | None:
    """The operator pod's working set from the metrics API (as `kubectl top` shows it)."""
    pods = cluster.get_json("pods", "-n", SYSTEM_NAMESPACE)["items"]
    for pod in pods:
        if not pod_ready(pod) or pod["metadata"].get("deletionTimestamp"):
            continue
        raw = cluster.kubectl(
            "get", "--raw",
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{SYSTEM_NAMESPACE}/pods/{pod['metadata']['name']}",
            check=False,
        )  # fmt: skip
        if raw.returncode != 0:
            return None
        usage = json.loads(raw.stdout)["containers"][0]["usage"]["memory"]
        return int(usage.removesuffix("Ki")) / 1024 if usage.endswith("Ki") else None
    return None


def services(store: Any) -> list[dict[str, Any]]:
    a = evs_manifest(
        "soak-a", store, replicas={"min": 1, "max": 2, "scaleDownDelaySeconds": 0},
        warmPool={"timeZone": "UTC", "windows": [
            {"name": "peak", "cron": "*/4 * * * *", "duration": "1m", "leadTime": "1m", "replicas": 2}]},
    )  # fmt: skip
    b = evs_manifest(
        "soak-b", store, replicas={"min": 0, "max": 1},
        warmPool={"timeZone": "UTC", "windows": [
            {"name": "peak", "cron": "2-59/4 * * * *", "duration": "1m", "leadTime": "1m", "replicas": 1}]},
    )  # fmt: skip
    return [a, b]


def chaos_step(cluster: Cluster, ns: str, rng: random.Random, operator: bool) -> str:
    """With ``operator``, the operator pod deleted (its Deployment makes a new one); else one
    random fault: a server pod killed, or the S3 store unreachable for BLIP_SECONDS."""
    kind = "operator-restart" if operator else rng.choice(["kill-pod", "kill-pod", "s3-blip"])
    if kind == "kill-pod":
        pods = [
            p
            for name in ("soak-a", "soak-b")
            for p in server_pods(cluster, ns, name)
            if not p["metadata"].get("deletionTimestamp")
        ]
        if not pods:
            return "kill-pod: none running"
        victim = rng.choice(pods)["metadata"]["name"]
        cluster.kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
        return f"kill-pod {victim}"
    if kind == "s3-blip":
        patch = '{"spec": {"selector": {"app": "nowhere"}}}'
        cluster.kubectl("patch", "service", STORE.service, "-n", STORE.namespace, "-p", patch)
        try:
            time.sleep(BLIP_SECONDS)
        finally:
            restore = json.dumps({"spec": {"selector": {"app": STORE.service}}})
            cluster.kubectl("patch", "service", STORE.service, "-n", STORE.namespace, "-p", restore)
        return f"s3-blip {BLIP_SECONDS} s"
    cluster.kubectl(
        "delete", "pod", "-n", SYSTEM_NAMESPACE, "-l", "app.kubernetes.io/name=emotivoice-operator",
        "--wait=false",
    )  # fmt: skip
    return "operator-restart"


def collect_cold_starts(cluster: Cluster, ns: str, seen: dict[str, dict[str, float]]) -> None:
    for name in ("soak-a", "soak-b"):
        status = cluster.get_json("evs", name, "-n", ns).get("status") or {}
        for record in (status.get("coldStarts") or {}).get("recent") or []:
            key = record.get("uid") or record.get("pod")
            phases = {k: float(v) for k, v in (record.get("phases") or {}).items()}
            phases["total"] = float(record.get("seconds") or 0)
            seen.setdefault(key, phases)


def run(cluster: Cluster, minutes: float, seed: int, workdir: Path) -> Report:
    report = Report(minutes=minutes)
    images = realnode.build_images()
    install_crd(cluster)
    install_operator(cluster, images, RELEASE, SYSTEM_NAMESPACE, watch=("evs-soak-*",))
    store = deploy_model_store(cluster, images["s3"], workdir, store=STORE)
    ns = f"evs-soak-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", ns, "--timeout=60s")
    credentials_secret(cluster, ns, STORE)
    rng = random.Random(seed)
    try:
        a, b = services(store)
        create_service(cluster, ns, a, workdir / "caches")
        create_service(cluster, ns, b, workdir / "caches", wait=False)
        svc = cluster.get_json("service", "soak-a", "-n", ns)
        url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
        time.sleep(OPERATOR_SETTLE_S)
        report.operator_memory_start_mib = operator_memory_mib(cluster)
        cold: dict[str, dict[str, float]] = {}
        end = time.monotonic() + minutes * 60
        client = SteadyClient(url, "/health", period=0.2, limit_s=minutes * 60 + 60,
                              max_requests=int(minutes * 60 * 5) + 600, timeout=5)  # fmt: skip
        with client:
            next_chaos = time.monotonic() + rng.uniform(*CHAOS_EVERY_S)
            # The operator restarts once, a quarter into the run; its memory at the end is
            # compared with the new instance's, OPERATOR_SETTLE_S after its start.
            restart_at: float | None = time.monotonic() + minutes * 15
            sample_memory_at: float | None = None
            while time.monotonic() < end:
                now = time.monotonic()
                if restart_at is not None and now >= restart_at:
                    step = chaos_step(cluster, ns, rng, operator=True)
                    restart_at = None
                    sample_memory_at = time.monotonic() + OPERATOR_SETTLE_S
                    report.chaos.append(f"{step} at +{minutes * 60 - (end - now):.0f} s")
                elif now >= next_chaos:
                    step = chaos_step(cluster, ns, rng, operator=False)
                    report.chaos.append(f"{step} at +{minutes * 60 - (end - now):.0f} s")
                    print(f"chaos: {report.chaos[-1]}", file=sys.stderr)
                    next_chaos = time.monotonic() + rng.uniform(*CHAOS_EVERY_S)
                if sample_memory_at is not None and now >= sample_memory_at:
                    report.operator_memory_start_mib = operator_memory_mib(cluster)
                    sample_memory_at = None
                collect_cold_starts(cluster, ns, cold)
                time.sleep(5)
        outcomes = client.snapshot()
        report.requests = len(outcomes)
        failed = failures(outcomes)
        report.failed = sum(failed.values())
        report.failed_by = dict(failed.most_common(5))
        report.operator_memory_end_mib = operator_memory_mib(cluster)
        # Settle: no chaos, the last window's start judged, then the audit.
        time.sleep(60)
        collect_cold_starts(cluster, ns, cold)
        for name in ("soak-a", "soak-b"):
            misses = (cluster.get_json("evs", name, "-n", ns).get("status") or {}).get(
                "misses"
            ) or {}
            report.window_starts_met += int(misses.get("met") or 0)
            report.window_starts_missed += int(misses.get("count") or 0)
            report.misses += [f"{name}: {m}" for m in window_missed_events(cluster, ns, name)]
        report.cold_starts = len(cold)
        for phase in sorted({k for phases in cold.values() for k in phases}):
            values = [p[phase] for p in cold.values() if phase in p]
            report.cold_start_phases[phase] = {
                "p50": statistics.median(values), "p95": percentile(values, 0.95)}  # fmt: skip
        found = leaks(cluster, ns)
        report.leaked = {k: v for k, v in asdict(found).items() if v}
        check = reverify_caches(cluster, ns, store.sums)
        report.caches_checked, report.cache_files_checked = check.claims, check.files
        report.corrupt = check.corrupt
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s",
                        check=False, timeout=150)  # fmt: skip
        cluster.kubectl("delete", "pv", "-l", f"{PV_NAMESPACE_LABEL}={ns}", check=False)
        uninstall_operator(cluster, RELEASE, SYSTEM_NAMESPACE)
        for name in (SYSTEM_NAMESPACE, STORE.namespace):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="default %(default)s (max 30)")
    parser.add_argument("--seed", type=int, default=33)
    parser.add_argument("--report", type=Path, help="also write the report as JSON here")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/evs-soak"))
    args = parser.parse_args(argv)
    if not 1 <= args.minutes <= 30:
        parser.error("--minutes must be between 1 and 30")
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    with cluster_session() as cluster:
        reason = realnode.missing_reason(cluster)
        if reason:
            print(f"soak: {reason}", file=sys.stderr)
            return 2
        report = run(cluster, args.minutes, args.seed, args.workdir)
    for line in report.lines():
        print(line)
    if args.report:
        args.report.write_text(
            json.dumps({"started": started.isoformat(), **asdict(report)}, indent=2)
        )
    met, missed = report.window_starts_met, report.window_starts_missed
    start_mem, end_mem = report.operator_memory_start_mib, report.operator_memory_end_mib
    # The targets (issue 33); failed requests are reported, not judged: a pod killed while it
    # is its service's only replica fails requests until its replacement is Ready.
    ok = (
        not report.corrupt
        and not report.leaked
        and (met + missed == 0 or met / (met + missed) >= 0.95)
        and (start_mem is None or end_mem is None or end_mem <= 1.2 * start_mem)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
