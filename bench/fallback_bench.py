"""Every request answered: a primary pool at zero behind a CPU fallback, on the real node, in one
run, against the same pool without a fallback (small model; the official `openai` client).

Phases, each with a client at a steady rate (bounded in count and time) through the primary's
Service, counting every outcome (200; a 503 with Retry-After is the documented shed answer;
anything else, a refused connection or a truncated body, is a failure):

0. baseline: the primary at zero without a fallback: what its users get today;
1. at zero with the fallback: the first answers' latency against the fallback's steady latency
   (measured first, straight through the fallback's own Service);
2. the wake: the first request wakes the primary; switch lag from its pod's Ready (a watch on
   this machine's clock) to the first answer it serves; the share of answers still from the
   fallback from 3 s after the switch on;
3. a pod leaving under load (one of two deleted, as a scale-down or a node drain removes one)
   with drainSeconds 5, through the Service and to the leaving pod's own IP during the drain;
   then the same with drainSeconds 0, in the same run;
4. a rollout under load (a new pod template), through the Service;
5. idle: the primary at its floor, no traffic: the operator's status writes over 30 s.

Targets (ratios of this run): 0 failed requests in every phase with the fallback; first answer
at zero <= 1.5x the fallback's steady latency; switch lag <= 3 s and <= 5 % of answers from the
fallback after it; 0 refused to the leaving pod's IP during the drain; 0 idle writes.

    python bench/fallback_bench.py [--out .bench/fallback.json]       (make bench-fallback)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.bench_session import BenchRelease, NoRealNode, operator_bench  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.operator_process import wait_for  # noqa: E402
from tests.support.services import create_service, evs_manifest  # noqa: E402
from tests.support.store import TEST_STORE, credentials_secret, deploy_model_store  # noqa: E402
from tests.support.workload import pod_ready  # noqa: E402

RELEASE = "evs-fallback-bench"
SYSTEM_NS = "evs-fallback-bench-system"
STORE = dataclasses.replace(TEST_STORE, namespace="evs-fallback-bench-s3")
NS = "evs-fallback-bench"
BENCH = BenchRelease(RELEASE, SYSTEM_NS, watch=(NS,), also_delete=(STORE.namespace,))
PRIMARY, FALLBACK, PLAIN = "tts-main", "tts-cpu", "tts-plain"
POOL_HEADER = "x-emotivoice-pool"
PERIOD_S = 0.5  # 2 speech requests/s: the fallback's one CPU pod keeps up
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"]


def sentence(n: int) -> str:
    """The same words in the n-th order: one length, but no content-cache hit (the server
    caches per text), as real traffic of that length would be."""
    words = WORDS[:]
    random.Random(n).shuffle(words)
    return " ".join(words).capitalize() + "."


PHASE_LIMIT_S = 300.0
DRAIN_S = 5


@dataclasses.dataclass
class Answer:
    sent: float  # time.time(): comparable with the pod watch's stamps
    seconds: float
    outcome: str
    pool: str = ""


class Client:
    """Speech requests at a steady rate through one base URL until stopped or its limit."""

    def __init__(self, url: str, speech: bool = True) -> None:
        self.url, self.speech = url, speech
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Client:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=90)

    def _run(self) -> None:
        from openai import APIConnectionError, APIStatusError, OpenAI

        client = OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=30)
        deadline = time.monotonic() + PHASE_LIMIT_S
        for _ in range(int(PHASE_LIMIT_S / PERIOD_S)):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            sent, began = time.time(), time.monotonic()
            try:
                if self.speech:
                    raw = client.audio.speech.with_raw_response.create(
                        model="emotivoice", voice="8051", input=sentence(random.getrandbits(40)),
                        response_format="wav",
                    )  # fmt: skip
                    ok = raw.content[:4] == b"RIFF"
                    outcome, pool = ("200" if ok else "truncated"), raw.headers.get(POOL_HEADER, "")
                else:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                        outcome, pool = str(response.status), response.headers.get(POOL_HEADER, "")
            except APIStatusError as err:
                shed = err.status_code == 503 and err.response.headers.get("Retry-After")
                outcome, pool = ("503 retry" if shed else str(err.status_code)), ""
            except APIConnectionError as err:
                outcome, pool = f"connection: {type(err.__cause__).__name__}", ""
            except urllib.error.URLError as err:
                refused = isinstance(err.reason, ConnectionRefusedError)
                outcome, pool = ("refused" if refused else f"error: {err.reason!r}"), ""
            except OSError as err:
                outcome, pool = f"error: {err!r}", ""
            self.answers.append(Answer(sent, time.monotonic() - began, outcome, pool))
            time.sleep(max(0.0, PERIOD_S - (time.monotonic() - began)))

    def failed(self, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        return [
            a
            for a in self.answers
            if since <= a.sent < until and a.outcome not in ("200", "503 retry")
        ]


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", NS).get("status") or {}


def _pods(cluster: Cluster, name: str, ready: bool = True) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component=server"
    pods = cluster.get_json("pods", "-n", NS, "-l", selector)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return [p for p in live if pod_ready(p)] if ready else live


def _url(cluster: Cluster, name: str) -> str:
    svc = cluster.get_json("service", name, "-n", NS)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _patch(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch", "evs", name, "-n", NS, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def _operator_writes(cluster: Cluster) -> float:
    """emotivoice_status_writes_total from the operator pod's metrics port."""
    pods = cluster.get_json(
        "pods", "-n", SYSTEM_NS, "-l", "app.kubernetes.io/name=emotivoice-operator"
    )["items"]
    ip = pods[0]["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:9090/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("emotivoice_status_writes_total")
    )


def _summary(answers: list[Answer]) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for a in answers:
        outcomes[a.outcome] = outcomes.get(a.outcome, 0) + 1
    pools: dict[str, int] = {}
    for a in answers:
        if a.pool:
            pools[a.pool] = pools.get(a.pool, 0) + 1
    return {"requests": len(answers), "outcomes": outcomes, "pools": pools}


def measure(cluster: Cluster, images: dict[str, str], cache: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    cluster.kubectl("create", "namespace", NS, check=False)
    store = deploy_model_store(cluster, images["s3"], cache / "store", STORE)
    credentials_secret(cluster, NS, STORE)

    def service(name: str, minimum: int, **extra: Any) -> dict[str, Any]:
        body = evs_manifest(name, store, replicas={"min": minimum, "max": 2})
        body["spec"].update(extra)
        return body

    print("== the fallback, and a primary without one (at zero)", file=sys.stderr)
    create_service(cluster, NS, service(FALLBACK, 1), cache)
    create_service(cluster, NS, service(PLAIN, 0), cache, wait=False)
    wait_for(lambda: _status(cluster, PLAIN).get("phase") == "ScaledToZero", timeout=120)

    print("== 0. baseline: a pool at zero, no fallback", file=sys.stderr)
    with Client(_url(cluster, PLAIN)) as plain:
        time.sleep(10)
    result["baseline_at_zero"] = _summary(plain.answers)

    print("== the fallback's steady latency (its own Service)", file=sys.stderr)
    with Client(_url(cluster, FALLBACK)) as direct:
        time.sleep(10)
    steady = statistics.median(a.seconds for a in direct.answers if a.outcome == "200")
    result["fallback_steady_s"] = steady

    print(
        "== 1-2. the primary at zero behind the fallback: first answers, wake, switch",
        file=sys.stderr,
    )
    primary = service(PRIMARY, 0, fallback={"service": FALLBACK, "wakeHold": "15m"})
    create_service(cluster, NS, primary, cache, wait=False)
    wait_for(lambda: (_status(cluster, PRIMARY).get("routing") or {}).get("pool") == FALLBACK,
             timeout=120, interval=1)  # fmt: skip
    # A Service just created takes kube-proxy a moment to program (a first run lost its very
    # first request to that, not to the fallback): start once the Service answers /health,
    # which the wake does not count (only speech requests are).
    url = _url(cluster, PRIMARY)
    wait_for(lambda: _health(url), timeout=60, interval=0.2, what="the primary's Service")
    with Client(url) as client:
        wait_for(lambda: client.answers, timeout=60, interval=0.2)
        first = next((a for a in client.answers if a.outcome == "200"), client.answers[0])
        ready_pod = wait_for(lambda: _pods(cluster, PRIMARY), timeout=PHASE_LIMIT_S - 60,
                             interval=0.1)  # fmt: skip
        ready_at = time.time()
        wait_for(lambda: any(a.pool == PRIMARY for a in client.answers), timeout=60, interval=0.1)
        own = next(a for a in client.answers if a.pool == PRIMARY)
        time.sleep(30)
    after = [a for a in client.answers if a.sent >= own.sent + 3 and a.pool]
    result["at_zero"] = {
        "first_answer_s": first.seconds,
        "first_answer_pool": first.pool,
        "first_answer_ratio_to_fallback_steady": first.seconds / steady,
        "wake_to_primary_ready_s": ready_at - first.sent,
        "primary_pod": ready_pod[0]["metadata"]["name"],
        "switch_lag_s": max(0.0, own.sent - ready_at),
        "fallback_share_after_switch": sum(a.pool == FALLBACK for a in after) / max(1, len(after)),
        **_summary(client.answers),
        "failed": len(client.failed()),
    }
    result["wake_status"] = _status(cluster, PRIMARY).get("wake")

    for drain in (DRAIN_S, 0):
        print(f"== 3. a pod of two leaves under load, drainSeconds {drain}", file=sys.stderr)
        server = {**primary["spec"]["server"], "drainSeconds": drain}
        _patch(cluster, PRIMARY, {"server": server, "replicas": {"min": 2, "max": 2}})
        pods = wait_for(lambda d=drain: len(p := _pods(cluster, PRIMARY)) == 2
                        and all(x["spec"]["terminationGracePeriodSeconds"] == d + 30 for x in p)
                        and p, timeout=PHASE_LIMIT_S, interval=1)  # fmt: skip
        names = sorted(p["metadata"]["name"] for p in pods)
        leaving = next(p for p in pods if p["metadata"]["name"] == names[-1])
        port = leaving["spec"]["containers"][0]["ports"][0]["containerPort"]
        pod_url = f"http://{leaving['status']['podIP']}:{port}"
        with Client(_url(cluster, PRIMARY)) as via, Client(pod_url, speech=False) as direct:
            time.sleep(3)
            started = time.time()
            # One of the two leaves (the Deployment then replaces it), as a scale-down or a node
            # drain removes one: the one the direct client targets.
            cluster.kubectl("delete", "pod", leaving["metadata"]["name"], "-n", NS, "--wait=false")
            time.sleep(drain + 10)
        in_drain = [a for a in direct.answers if started <= a.sent < started + max(drain - 1, 0)]
        result[f"pod_leaves_drain_{drain}"] = {
            "service": {**_summary(via.answers), "failed": len(via.failed())},
            "pod_ip_during_drain": _summary(in_drain),
            "pod_ip_refused_in_first_5s": sum(
                a.outcome != "200" for a in direct.answers if started <= a.sent < started + 5
            ),
        }

    print("== 4. a rollout under load", file=sys.stderr)
    with Client(_url(cluster, PRIMARY)) as via:
        time.sleep(3)
        env = [{"name": "EMOTIVOICE_ROLLOUT", "value": str(time.time())}]
        _patch(cluster, PRIMARY, {"server": {**primary["spec"]["server"], "env": env}})
        wait_for(lambda: any(
            e.get("value") == env[0]["value"]
            for p in _pods(cluster, PRIMARY)
            for e in p["spec"]["containers"][0].get("env", [])
        ), timeout=PHASE_LIMIT_S - 30, interval=1)  # fmt: skip
        time.sleep(10)
    result["rollout"] = {**_summary(via.answers), "failed": len(via.failed())}

    print("== 5. idle: no traffic for 30 s", file=sys.stderr)
    wait_for(lambda: (st := _status(cluster, PRIMARY)).get("readyReplicas") == 2
             and st.get("desiredReplicas") == 2, timeout=PHASE_LIMIT_S, interval=1)  # fmt: skip
    time.sleep(10)
    before = _operator_writes(cluster)
    time.sleep(30)
    result["idle_status_writes_30s"] = _operator_writes(cluster) - before
    return result


def report(result: dict[str, Any]) -> dict[str, float]:
    zero = result["at_zero"]
    drained = result[f"pod_leaves_drain_{DRAIN_S}"]
    ratios = {
        "failed at zero with the fallback": float(zero["failed"]),
        "first answer / fallback steady": zero["first_answer_ratio_to_fallback_steady"],
        "switch lag (s)": zero["switch_lag_s"],
        "fallback share after the switch": zero["fallback_share_after_switch"],
        "failed through the Service, a pod leaving": float(drained["service"]["failed"]),
        "refused to the pod IP during the drain": float(
            sum(n for k, n in drained["pod_ip_during_drain"]["outcomes"].items() if k != "200")
        ),
        "failed through the Service, rollout": float(result["rollout"]["failed"]),
        "idle status writes (30 s)": float(result["idle_status_writes_30s"]),
    }
    undrained = result["pod_leaves_drain_0"]["pod_ip_refused_in_first_5s"]
    print(f"\nto the leaving pod's IP in its first 5 s: {drained['pod_ip_refused_in_first_5s']} "
          f"failed with drainSeconds {DRAIN_S}, {undrained} with drainSeconds 0")  # fmt: skip
    targets = {
        "failed at zero with the fallback": 0,
        "first answer / fallback steady": 1.5,
        "switch lag (s)": 3.0,
        "fallback share after the switch": 0.05,
        "failed through the Service, a pod leaving": 0,
        "refused to the pod IP during the drain": 0,
        "failed through the Service, rollout": 0,
        "idle status writes (30 s)": 0,
    }
    base = result["baseline_at_zero"]
    print(f"\nbaseline, a pool at zero without a fallback: {base['requests']} requests, "
          f"outcomes {base['outcomes']}")  # fmt: skip
    print(f"fallback steady latency: {result['fallback_steady_s']:.3f} s")
    print(f"at zero with the fallback: {json.dumps(zero)}")
    for drain in (DRAIN_S, 0):
        leaving = result[f"pod_leaves_drain_{drain}"]
        print(f"a pod leaving, drainSeconds {drain}: {json.dumps(leaving)}")
    print(f"rollout: {json.dumps(result['rollout'])}")
    print("\ntargets:")
    for key, value in ratios.items():
        met = value <= targets[key]
        print(
            f"  {key:<44} {value:>8.3f}  (target <= {targets[key]})  {'met' if met else 'MISSED'}"
        )
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "fallback.json")
    args = parser.parse_args(argv)
    try:
        bench = operator_bench("bench-fallback", BENCH)
        with bench as (cluster, images), tempfile.TemporaryDirectory(prefix="evs-fallback-") as tmp:
            result = measure(cluster, images, Path(tmp))
    except NoRealNode as err:
        print(err, file=sys.stderr)
        return 2
    result["ratios"] = report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
