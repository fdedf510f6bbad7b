"""One window's warm path on the real node: the timeline from the image pre-pull's start to the
replicas Ready, against a replica's own cold start with the pull, in one run.

The model is the full-size one by default (the released dimensions, `make test-model-full`) with
the CRD's default warm-up and resources: the replica's own start is the one a user's replica
has, not the small test model's, whose start is mostly fixed costs (sandbox, imports) that a
margin of a second already dwarfs. ``--model small`` runs the tests' model.

1. baseline: the server image removed from containerd, a one-replica service's cold start: its
   image phase holds the whole pull (the kubelet's Pulled Event: seconds and bytes).
2. the window: a service with leadTime: auto learns its replica lead from three starts of its
   own (autoLeadTime min 1s, margin 0.5s: twice the operator's reaction from the lead's instant
   to the pod's creation, about 0.25 s), each from zero replicas to one, goes to zero, the image
   is removed again, and a window about three minutes ahead is set with warmPool.prePull (lead
   3m): the pre-pull DaemonSet pulls the image while nothing warm exists, the replica comes at
   start - lead (seconds) onto a node holding the image.

Timeline (the API's timestamps): window set, pre-pull DaemonSet created, the image pulled on the
node (the kubelet's Event), the replica scheduled (the scheduler's microsecond Event), Ready, the
window's start.

Targets: the replica Ready at (before) the window start; the warm replica-seconds spent before
the start (replica scheduled -> window start) at most 1.2x what the replica's own cold start
needs (created -> Ready, status.coldStarts). It asserts nothing (tests/e2e/test_warm_path.py
does).

    python bench/window_bench.py [--model full|small] [--out .bench/window.json]   (make bench-window)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.bench_session import BenchRelease, NoRealNode, operator_bench  # noqa: E402
from tests.support.realnode import ImageInUse  # noqa: E402
from tests.support.services import default_resources  # noqa: E402
from tests.support.store import TEST_STORE, credentials_secret, deploy_model_store  # noqa: E402
from tests.support.warm_path import cold_baseline, prepulled_window, seconds_between  # noqa: E402

STORE = dataclasses.replace(TEST_STORE, namespace="evs-bench-s3")
NS = "evs-bench-window"
BENCH = BenchRelease("evs-bench", "evs-bench-system", watch=(NS,), also_delete=(STORE.namespace,))
TARGET_REPLICA_TIME = 1.2


def report(cold: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The timeline (seconds from the pre-pull's creation) and the targets beside the values."""
    origin = run["prepull_created"]
    replica = run["replica"]
    steps = [
        ("window set (the lead learned before)", run["window_set"]),
        ("pre-pull DaemonSet created", run["prepull_created"]),
        ("image pulled on the node (kubelet Event)", run["prepull_pulled_at"]),
        ("replica scheduled (start - leadTime)", replica["scheduled"] or replica["created"]),
        ("replica Ready", replica["ready"]),
        ("window start", run["window_start"]),
    ]
    print("\ntimeline (s from the pre-pull's start):")
    for what, at in steps:
        offset = seconds_between(origin, at)
        print(f"  {offset if offset is not None else float('nan'):8.1f}  {what}  ({at})")
    pulls = run["prepull_pulls"]
    pull = pulls[0] if pulls else {}
    early = seconds_between(replica["ready"], run["window_start"]) or 0.0
    spent = seconds_between(replica["scheduled"] or replica["created"], run["window_start"]) or 0.0
    ratio = spent / replica["seconds"] if replica["seconds"] else float("inf")
    rows = [
        ("baseline: image phase (own pull)", f"{cold['image_phase_s']:.1f} s", ""),
        (
            "baseline: the kubelet's pull",
            f"{cold['pull']['seconds']:.1f} s, {cold['pull'].get('bytes', 0) / 1e6:,.0f} MB",
            "",
        ),
        ("baseline: created -> Ready", f"{cold['seconds']:.1f} s", ""),
        (
            "pre-pull: the kubelet's pull",
            f"{pull.get('seconds', float('nan')):.1f} s, {pull.get('bytes', 0) / 1e6:,.0f} MB",
            "",
        ),
        (
            "window: image phase (status.coldStarts)",
            f"{replica['image_phase_s']:.2f} s",
            "< 1 s",
        ),
        (
            "window: sandbox -> first container (containerd)",
            f"{replica['sandbox_to_first_container_s']} s",
            "< 1 s",
        ),
        (
            "baseline: sandbox -> first container (containerd)",
            f"{cold['sandbox_to_first_container_s']} s",
            "",
        ),
        ("window: created -> Ready", f"{replica['seconds']:.1f} s", ""),
        (
            "window: its phases (status.coldStarts)",
            ", ".join(f"{k} {v:.2f}" for k, v in (replica.get("phases") or {}).items()),
            "",
        ),
        (
            "the learned starts: created -> Ready",
            ", ".join(f"{r['seconds']:.1f} s" for r in run.get("learned_from") or []),
            "",
        ),
        (
            "learned replica lead",
            f"{run['lead'].get('seconds')} s ({run['lead'].get('basis', '')})",
            "",
        ),
        ("window: Ready before the start by", f"{early:.1f} s", ">= 0 s"),
        (
            "warm replica-s before start / own cold start",
            f"{ratio:.2f}x ({spent:.0f} / {replica['seconds']:.1f} s)",
            f"<= {TARGET_REPLICA_TIME}x",
        ),
    ]
    print("\n| what | measured | target |\n|---|---|---|")
    for what, value, target in rows:
        print(f"| {what} | {value} | {target} |")
    return {
        "ready_before_start_s": round(early, 1),
        "replica_seconds_before_start": round(spent, 1),
        "own_cold_start_s": replica["seconds"],
        "replica_time_ratio": round(ratio, 2),
        "image_phase_prepulled_s": replica["image_phase_s"],
        "image_phase_baseline_s": cold["image_phase_s"],
    }


def server_spec() -> dict[str, Any]:
    """What users get: the CRD's default warm-up and its memory request and limit (CPU request
    250m, so the pod fits beside a demo's on the 2-core node), not the tests' one-phrase warm-up."""
    return {"resources": default_resources(), "startupTimeoutSeconds": 300}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "window.json")
    parser.add_argument(
        "--model", choices=("full", "small"), default="full",
        help="full: the released dimensions (.models/full, `make test-model-full`), the start a "
        "user's replica has; small: the tests' few-MB model, whose start is mostly fixed costs",
    )  # fmt: skip
    parser.add_argument(
        "--margin", default="0.5s",
        help="autoLeadTime.margin of the window service (default %(default)s): what the lead "
        "adds to the learned starts' p95 for the operator's reaction and a slower start",
    )  # fmt: skip
    args = parser.parse_args(argv)
    model_dir = REPO / ".models" / "full" if args.model == "full" else None
    if model_dir is not None and not model_dir.is_dir():
        parser.error(f"--model full needs {model_dir}: run `make test-model-full` first")
    try:
        bench = operator_bench("bench-window", BENCH)
        with bench as (cluster, images), tempfile.TemporaryDirectory(prefix="evs-window-") as tmp:
            work = Path(tmp)
            store = deploy_model_store(cluster, images["s3"], work, STORE, model_dir)
            cluster.kubectl("create", "namespace", NS, check=False)
            credentials_secret(cluster, NS, STORE)
            image = images["server-cpu"]
            server = server_spec()
            cold = dataclasses.asdict(cold_baseline(cluster, NS, store, work, image, server))
            run = prepulled_window(
                cluster, NS, store, work, image, margin=args.margin, server=server
            ).as_dict()
            # Written before the clean-up, which may take minutes.
            result = {
                "model": args.model,
                "margin": args.margin,
                "baseline": cold,
                "window": run,
                "summary": report(cold, run),
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2))
            print(f"\nwritten: {args.out}", flush=True)
    except (NoRealNode, ImageInUse) as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
