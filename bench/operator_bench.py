"""Operator benchmark on the local control plane: N EmotiVoiceServices created at once.

Measures, in one run: time until every service has all its children and a written status
(convergence), then the operator's API writes over several idle timer periods (target: 0).

    .venv/bin/python bench/operator_bench.py [--count 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import build_binaries, cluster_session
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import running_operator

CHILD_KINDS = "statefulset,deployment,service,pvc,hpa,cronjob,serviceaccount,role,rolebinding"
# SA, Role, RoleBinding, Service, StatefulSet, HPA, CronJob and the claim of replica 0 (the
# default cache scope; the StatefulSet controller makes it).
CHILDREN_PER_SERVICE = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    build_binaries("cluster", on_line=lambda line: print(line, file=sys.stderr))
    with cluster_session() as cluster, tempfile.TemporaryDirectory() as tmp:
        ns = f"evs-bench-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "namespace", ns)
        try:
            with running_operator(cluster, Path(tmp)) as op:
                time.sleep(3)  # let the operator start its watches
                services = [valid_resource(f"tts-{i:03d}") for i in range(args.count)]
                started = time.monotonic()
                cluster.apply(services, namespace=ns)
                applied = time.monotonic() - started
                converged = None
                while time.monotonic() - started < args.timeout:
                    children = len(cluster.get_json(CHILD_KINDS, "-n", ns)["items"])
                    evs = cluster.get_json("evs", "-n", ns)["items"]
                    with_status = sum(1 for e in evs if (e.get("status") or {}).get("phase"))
                    if children >= args.count * CHILDREN_PER_SERVICE and with_status == args.count:
                        converged = time.monotonic() - started
                        break
                    time.sleep(1)
                print(f"services: {args.count}, kubectl apply: {applied:.1f} s")
                if converged is None:
                    print(
                        f"NOT converged within {args.timeout:.0f} s: {children} children, {with_status} statuses"
                    )
                    return 1
                print(
                    f"converged (all {args.count * CHILDREN_PER_SERVICE} children + every status): {converged:.1f} s (target <= 60 s)"
                )
                # Idle: count resourceVersion changes of the EmotiVoiceServices (only the operator writes them).
                before = {
                    e["metadata"]["name"]: e["metadata"]["resourceVersion"]
                    for e in cluster.get_json("evs", "-n", ns)["items"]
                }
                time.sleep(op.timer_interval * 2)
                before = {
                    e["metadata"]["name"]: e["metadata"]["resourceVersion"]
                    for e in cluster.get_json("evs", "-n", ns)["items"]
                }
                periods = 5
                time.sleep(op.timer_interval * periods)
                after = {
                    e["metadata"]["name"]: e["metadata"]["resourceVersion"]
                    for e in cluster.get_json("evs", "-n", ns)["items"]
                }
                writes = sum(before[k] != after.get(k) for k in before)
                print(
                    f"idle: {writes} EmotiVoiceServices written over {periods} timer periods ({op.timer_interval:.0f} s each; target 0)"
                )
                print(
                    json.dumps(
                        {
                            "count": args.count,
                            "converge_s": round(converged, 1),
                            "idle_writes": writes,
                        }
                    )
                )
        finally:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
