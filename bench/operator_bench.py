"""Operator benchmark on the local control plane: N EmotiVoiceServices created at once.

Measures, in one run: the floor (the same services' children written with no operator,
bench/operator_floor.py); the time until every service has all its children and a written
status (convergence), and its ratio to the floor; then, over five idle timer periods, the
operator's writes (target: 0) and the API requests it causes, from the API server's own
``apiserver_request_total``. Controllers, KWOK and the HPA controller also talk to the API
server, so the same span is counted twice: once with the operator running and once with it
paused (SIGSTOP: its watches stay open, it sends nothing); the difference, by verb and
resource, is the operator's.

    .venv/bin/python bench/operator_bench.py [--count 100] [--timer-interval 3] [--skip-floor]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import operator_floor
from emotivoice_operator.crd import GROUP, PLURAL, VERSION
from tests.support.cluster import Cluster, build_binaries, cluster_session
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import (
    OperatorProcess,
    install_crd,
    operator_kubeconfig,
)

# Where the children live, listed as metadata only (a full listing of 8,000 children is ~80 MB
# of JSON every poll: the bench's own load on the API server it measures).
CHILD_LISTS = (
    "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "/apis/apps/v1/namespaces/{ns}/deployments",
    "/api/v1/namespaces/{ns}/services",
    "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
    "/apis/batch/v1/namespaces/{ns}/cronjobs",
    "/api/v1/namespaces/{ns}/serviceaccounts",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
)
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
# SA, Role, RoleBinding, Service, StatefulSet, HPA, CronJob and the claim of replica 0 (the
# default cache scope; the StatefulSet controller makes it).
CHILDREN_PER_SERVICE = 8
IDLE_PERIODS = 5
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_totals(cluster: Cluster) -> Counter[str]:
    """apiserver_request_total summed by "VERB resource[/subresource]" (all codes, scopes)."""
    out: Counter[str] = Counter()
    for line in cluster.kubectl("get", "--raw", "/metrics", timeout=120).stdout.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        out[f"{labels.get('verb', '?')} {resource}"] += int(float(match["value"]))
    return out


def counted(cluster: Cluster, seconds: float) -> Counter[str]:
    before = request_totals(cluster)
    time.sleep(seconds)
    after = request_totals(cluster)
    return Counter({k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)})


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def list_items(api: Any, path: str, accept: str = "application/json") -> list[dict[str, Any]]:
    response = api.call_api(
        path, "GET", header_params={"Accept": accept}, auth_settings=["BearerToken"],
        _preload_content=False, _request_timeout=120,
    )  # fmt: skip
    return json.loads(response.data).get("items") or []


def operator_events(api: Any, ns: str) -> int:
    """Events the operator posted in ``ns`` (kopf posts each as a new Event, never a patch)."""
    events = list_items(api, f"/api/v1/namespaces/{ns}/events")
    return sum(
        1
        for e in events
        if (e.get("source") or {}).get("component") == "kopf"
        or e.get("reportingComponent") == "kopf"
    )


def events_by_source(api: Any, ns: str) -> Counter[str]:
    """Events in ``ns`` by "component reason", each counted as often as it happened (a repeated
    Event is one object patched with a higher count: a POST, then PATCHes)."""
    out: Counter[str] = Counter()
    for e in list_items(api, f"/api/v1/namespaces/{ns}/events"):
        source = e.get("reportingComponent") or (e.get("source") or {}).get("component") or "?"
        out[f"{source} {e.get('reason', '?')}"] += int(e.get("count") or 1)
    return out


def operator_metrics(port: int) -> dict[str, float]:
    """The operator's own counters: passes run, their total wall time, children by action."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (
                "emotivoice_reconcile_seconds_count",
                "emotivoice_reconcile_seconds_sum",
            ):
                out[sample.name] = sample.value
            elif sample.name == "emotivoice_child_applies_total":
                out[f"applies {sample.labels['action']}"] = (
                    out.get(f"applies {sample.labels['action']}", 0) + sample.value
                )
    return out


def component_pids(cluster: Cluster) -> dict[str, int]:
    """The local control plane's processes (hack/cluster.sh's pid files beside its kubeconfig);
    none for a cluster from elsewhere."""
    out = {}
    for path in sorted((cluster.kubeconfig.parent / "pids").glob("*.pid")):
        try:
            pid = int(path.read_text().strip())
            cpu_seconds(pid)
        except (OSError, ValueError):
            continue
        out[path.stem] = pid
    return out


def create_services(cluster: Cluster, ns: str, services: list[dict[str, Any]]) -> None:
    for i in range(0, len(services), 250):  # one POST each (kubectl apply: GET + POST)
        items = {"apiVersion": "v1", "kind": "List", "items": services[i : i + 250]}
        cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(items), timeout=300)


def wait_converged(
    api: Any, ns: str, count: int, started: float, timeout: float
) -> tuple[float | None, int, int]:
    """Seconds from ``started`` until every service in ``ns`` has all its children and a status
    phase (None: not within ``timeout``), and the children and statuses seen last."""
    children = with_status = 0
    while time.monotonic() - started < timeout:
        children = sum(
            len(list_items(api, path.format(ns=ns), METADATA_ONLY)) for path in CHILD_LISTS
        )
        evs = list_items(api, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}")
        with_status = sum(1 for e in evs if (e.get("status") or {}).get("phase"))
        if children >= count * CHILDREN_PER_SERVICE and with_status == count:
            return time.monotonic() - started, children, with_status
        time.sleep(max(1.0, count / 200))  # listing 8,000 children costs too
    return None, children, with_status


def floor_run(cluster: Cluster, api: Any, kubeconfig: Path, count: int, timeout: float) -> float:
    """The same services converged with no operator (bench/operator_floor.py), in a namespace
    of their own that is deleted (and waited for) before the operator's run starts."""
    ns = f"evs-floor-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    writer = kubernetes.config.new_client_from_config(str(kubeconfig))
    started = time.monotonic()
    create_services(cluster, ns, [valid_resource(f"tts-{i:04d}") for i in range(count)])
    operator_floor.write_children(
        writer, list_items(api, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}")
    )
    converged, children, with_status = wait_converged(api, ns, count, started, timeout)
    if converged is None:
        raise SystemExit(
            f"floor NOT converged within {timeout:.0f} s: {children} of "
            f"{count * CHILDREN_PER_SERVICE} children, {with_status} statuses"
        )
    print(
        f"floor (no operator: each child applied once, one status per service, "
        f"{operator_floor.THREADS} threads): {converged:.1f} s; deleting its namespace",
        flush=True,
    )
    cluster.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=900s", timeout=960)
    return converged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--timer-interval", type=float, default=3.0)
    parser.add_argument(
        "--skip-floor", action="store_true", help="no same-run floor (quicker, no ratio)"
    )
    args = parser.parse_args()
    # Simulated nodes only: a real node's kubelet, containerd and CoreDNS would only add
    # load beside what is measured (the services' pods tolerate only the simulated nodes).
    os.environ.setdefault("EVS_REAL_NODE", "0")
    build_binaries("cluster", on_line=lambda line: print(line, file=sys.stderr))
    with cluster_session() as cluster, tempfile.TemporaryDirectory() as tmp:
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        ns = f"evs-bench-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "namespace", ns)
        install_crd(cluster)
        kubeconfig = operator_kubeconfig(cluster, Path(tmp), namespaces=(ns,))
        floor = None
        if not args.skip_floor:
            floor = floor_run(cluster, api, kubeconfig, args.count, args.timeout)
        op = OperatorProcess(
            kubeconfig, Path(tmp) / "operator.log", args.timer_interval, namespaces=(ns,)
        )
        op.start()
        try:
            assert op.proc is not None
            time.sleep(3)  # let the operator start its watches
            services = [valid_resource(f"tts-{i:04d}") for i in range(args.count)]
            # Where convergence spends its time: each process's CPU, every client's requests.
            pids = {"operator": op.proc.pid, **component_pids(cluster)}
            cpu_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
            requests_start = request_totals(cluster)
            started = time.monotonic()
            create_services(cluster, ns, services)
            applied = time.monotonic() - started
            converged, children, with_status = wait_converged(
                api, ns, args.count, started, args.timeout
            )
            print(f"services: {args.count}, kubectl create: {applied:.1f} s")
            if converged is None:
                print(
                    f"NOT converged within {args.timeout:.0f} s: {children} of "
                    f"{args.count * CHILDREN_PER_SERVICE} children, {with_status} statuses; "
                    f"operator RSS {rss_mb(op.proc.pid):.0f} MB"
                )
                return 1
            print(
                f"converged (all {args.count * CHILDREN_PER_SERVICE} children + every status): "
                f"{converged:.1f} s; operator RSS {rss_mb(op.proc.pid):.0f} MB"
            )
            if floor is not None:
                print(
                    f"operator / floor: {converged / floor:.2f}x "
                    f"({converged:.1f} s / {floor:.1f} s; 1.00x: no cost of its own)"
                )
            converge_cpu = {n: cpu_seconds(p) - cpu_start[n] for n, p in pids.items()}
            ops = operator_metrics(op.metrics_port)
            passes = ops.get("emotivoice_reconcile_seconds_count", 0)
            print(
                f"operator passes while converging: {passes:.0f} ({passes / args.count:.1f} per "
                f"service), {ops.get('emotivoice_reconcile_seconds_sum', 0) / max(passes, 1) * 1000:.0f} "
                "ms each on average; children checked, by action: "
                + ", ".join(
                    f"{k.split()[1]} {v:.0f}" for k, v in ops.items() if k.startswith("applies")
                )
            )
            print(
                "CPU while converging (share of one core): "
                + ", ".join(f"{n} {c / converged:.0%}" for n, c in sorted(converge_cpu.items()))
            )
            requests_end = request_totals(cluster)
            converge_requests = Counter(
                {k: v - requests_start.get(k, 0) for k, v in requests_end.items()}
            )
            converge_requests = +converge_requests  # drop zero and negative counts
            print(
                f"API requests while converging, all clients: {sum(converge_requests.values())} "
                f"({sum(converge_requests.values()) / args.count:.1f} per service)"
            )
            for key, value in converge_requests.most_common(14):
                print(f"  {key}: {value} ({value / args.count:.1f} per service)")
            converge_events = events_by_source(api, ns)
            print(f"Events while converging, by source and reason: {sum(converge_events.values())}")
            for key, value in converge_events.most_common(10):
                print(f"  {key}: {value} ({value / args.count:.1f} per service)")
            # Idle means settled, not only written: at 1,000 the controllers still create claims
            # and pods for minutes after the last status appears (here they stay Pending: no
            # provisioner), and each status change that brings is convergence, not idling.
            # Settled: no service written for two idle spans in a row.
            settled = None
            previous = None
            while time.monotonic() - started < args.timeout:
                evs = list_items(api, f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}")
                now_versions = {
                    e["metadata"]["name"]: e["metadata"]["resourceVersion"] for e in evs
                }
                if now_versions == previous:
                    settled = time.monotonic() - started
                    break
                previous = now_versions
                time.sleep(op.timer_interval * IDLE_PERIODS)
            print(
                "statuses settled (unchanged for one idle span): "
                + (
                    f"{settled:.1f} s"
                    if settled is not None
                    else f"not within {args.timeout:.0f} s"
                )
            )
            time.sleep(op.timer_interval * 2)  # let the last events settle
            span = op.timer_interval * IDLE_PERIODS

            def versions() -> dict[str, str]:
                return {
                    e["metadata"]["name"]: e["metadata"]["resourceVersion"]
                    for e in cluster.get_json("evs", "-n", ns)["items"]
                }

            before = versions()
            events_before = operator_events(api, ns)
            cpu_before = cpu_seconds(op.proc.pid)
            running = counted(cluster, span)
            cpu_idle = cpu_seconds(op.proc.pid) - cpu_before
            events_posted = operator_events(api, ns) - events_before
            after = versions()
            writes = sum(before[k] != after.get(k) for k in before)
            os.kill(op.proc.pid, signal.SIGSTOP)
            try:
                paused = counted(cluster, span)
            finally:
                os.kill(op.proc.pid, signal.SIGCONT)
            # Events are left out of the difference: the HPA controller posts and patches
            # hundreds every sync here (no metrics API), far more than the two spans' noise
            # allows to subtract; the operator's own are counted from the Events themselves.
            ours = Counter(
                {
                    k: running[k] - paused.get(k, 0)
                    for k in running
                    if not k.endswith(" events") and running[k] > paused.get(k, 0)
                }
            )
            if events_posted:
                ours["POST events"] = events_posted
            per_service = sum(ours.values()) / span / args.count
            print(
                f"idle: {writes} EmotiVoiceServices written over {IDLE_PERIODS} timer periods "
                f"({op.timer_interval:g} s each; target 0); operator CPU {cpu_idle / span:.0%}"
            )
            print(
                f"idle API requests caused by the operator: {sum(ours.values())} in {span:g} s = "
                f"{per_service:.4f} per second per service (target <= 0.05); "
                f"all clients: {sum(running.values())} running, {sum(paused.values())} paused"
            )
            for key, value in ours.most_common(12):
                print(f"  {key}: {value}")
            print(
                json.dumps(
                    {
                        "count": args.count,
                        "timer_interval_s": op.timer_interval,
                        "converge_s": round(converged, 1),
                        "floor_s": None if floor is None else round(floor, 1),
                        "converge_passes": passes,
                        "settled_s": None if settled is None else round(settled, 1),
                        "converge_cpu_s": {n: round(c, 1) for n, c in converge_cpu.items()},
                        "converge_requests_by_verb_resource": dict(converge_requests.most_common()),
                        "idle_writes": writes,
                        "idle_requests_per_s_per_service": round(per_service, 4),
                        "idle_requests_by_verb_resource": dict(ours.most_common()),
                        "rss_mb": round(rss_mb(op.proc.pid)),
                    }
                )
            )
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
