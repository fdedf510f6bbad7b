"""Cold start of a real pod on the real node, ours against the common recipe, in one run.

What a user sees, from the API's and the server's own timestamps (the kubelet stamps every log
line to the nanosecond; the API's conditions have whole seconds, so Ready is taken from a watch
that polls every 0.1 s on this machine's clock, the clock the kubelet's stamps use too):

1. ours, empty cache: an EmotiVoiceService on a fresh volume: pod seen -> scheduled -> image
   present/pulled -> fetch step started and done (download, verify, convert) -> server process
   started -> model loaded -> warm (/ready 200) -> pod Ready -> first request answered through
   the Service; then the steady-state latency of the same request.
2. ours, warm cache: the pod deleted; its replacement on the verified cache, the same timeline.
3. the server standalone on this machine (same model files, same warm-up): process start ->
   ready, the baseline of the warm-cache target.
4. the common recipe on the same node and image: a lazy server (loads on the first request)
   behind a readinessProbe on /health with initialDelaySeconds 30, and an init container that
   copies the prefix one object at a time (no checksum): time to Ready and to a correct first
   answer.
5. the server pod's peak memory (the kubelet's stats, sampled every 0.5 s while it starts and
   serves) beside the request and limit the operator rendered.

Each for the small generated model and the full-size one (the released dimensions, `make
test-model-full`), in one run; the server image's first pull onto the node (from the local
registry: seconds and bytes) is its own line.

Targets (ratios of this run): Ready <= 1 s after /ready; warm restart created -> Ready <= 1.5x
standalone start -> ready; first request <= 1.2x steady, cold and warm; recipe >= 3x slower to
a correct first answer than ours on an empty cache; the default memory limit >= 1.5x the
server container's peak working set.

    python bench/coldstart_bench.py [--models small,full] [--out .bench/coldstart.json]
                                                                        (make bench-coldstart)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import subprocess
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

from tests.server.server_process import free_port  # noqa: E402
from tests.support import realnode  # noqa: E402
from tests.support.bench_session import (  # noqa: E402
    BenchRelease,
    NoRealNode,
    install,
    real_node_bench,
    remove,
)
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.operator_process import wait_for  # noqa: E402
from tests.support.services import cache_volume, default_resources, evs_manifest  # noqa: E402
from tests.support.store import TEST_STORE, ModelStore, credentials_secret, deploy_model_store  # noqa: E402
from tests.support.timestamps import first_line, instant, timestamped_log  # noqa: E402
from tests.support.workload import pod_ready  # noqa: E402

RELEASE = "evs-bench"
SYSTEM_NS = "evs-bench-system"
STORE = dataclasses.replace(TEST_STORE, namespace="evs-bench-s3")
NS = "evs-bench-coldstart"
BENCH = BenchRelease(RELEASE, SYSTEM_NS, watch=(NS,), also_delete=(STORE.namespace,))
NAME = "tts"
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "today"]
STEADY_REQUESTS = 10
SERVER_SELECTOR = f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=server"


class PodWatch:
    """Watches the pods of a selector (one `kubectl get -w` stream, so the times are the
    updates' arrival on this machine, not a poll's): when each was first seen and first seen
    Ready; and, every second, the kubelet's memory figures of their containers."""

    def __init__(self, cluster: Cluster, namespace: str, selector: str) -> None:
        self.cluster, self.namespace, self.selector = cluster, namespace, selector
        self.first_seen: dict[str, float] = {}
        self.ready_seen: dict[str, float] = {}
        self.peak_memory: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._threads = [
            threading.Thread(target=self._watch, daemon=True),
            threading.Thread(target=self._sample, daemon=True),
        ]

    def __enter__(self) -> PodWatch:
        self._proc = subprocess.Popen(
            [str(self.cluster.kubectl_path), f"--kubeconfig={self.cluster.kubeconfig}", "get",
             "pods", "-n", self.namespace, "-l", self.selector, "--watch", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)

    def _watch(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for line in self._proc.stdout:
            buffer += line
            try:
                pod, end = decoder.raw_decode(buffer.lstrip())
            except json.JSONDecodeError:
                continue
            buffer = buffer.lstrip()[end:]
            now = time.time()
            name = pod["metadata"]["name"]
            self.first_seen.setdefault(name, now)
            if name not in self.ready_seen and pod_ready(pod):
                self.ready_seen[name] = now

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self._sample_memory()

    def _sample_memory(self) -> None:
        try:
            raw = self.cluster.kubectl(
                "get", "--raw", f"/api/v1/nodes/{realnode.NODE_NAME}/proxy/stats/summary"
            ).stdout
        except Exception:
            return
        for pod in json.loads(raw).get("pods", []):
            if pod["podRef"]["namespace"] != self.namespace:
                continue
            for container in pod.get("containers", []):
                memory = container.get("memory") or {}
                key = f"{pod['podRef']['name']}/{container['name']}"
                peak = self.peak_memory.setdefault(key, {})
                for field in ("workingSetBytes", "rssBytes"):
                    peak[field] = max(peak.get(field, 0), int(memory.get(field) or 0))

    def wait_ready(self, exclude: set[str], timeout: float) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready = [n for n in self.ready_seen if n not in exclude]
            if ready:
                return ready[0]
            time.sleep(0.02)
        raise TimeoutError(f"no new Ready pod for {self.selector} in {timeout:.0f} s")


def text(seed: int) -> str:
    """A sentence of the same words in another order: the same length, but no cache hit (the
    server caches content embeddings per text), as real traffic of that length would be."""
    words = WORDS[:]
    random.Random(seed).shuffle(words)
    return " ".join(words).capitalize() + "."


def post_speech(url: str, seed: int) -> float:
    body = json.dumps({"model": "emotivoice", "input": text(seed), "response_format": "wav"})
    body = body.encode()
    request = urllib.request.Request(
        f"{url}/v1/audio/speech", data=body, headers={"Content-Type": "application/json"}
    )
    began = time.time()
    with urllib.request.urlopen(request, timeout=300) as response:
        data = response.read()
        if response.status != 200 or not data.startswith(b"RIFF"):
            raise RuntimeError(f"speech request failed: {response.status}")
    return time.time() - began


def service_url(cluster: Cluster, namespace: str, name: str) -> str:
    svc = cluster.get_json("service", name, "-n", namespace)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def api_time(text: str | None) -> float | None:
    return instant(text) if text else None


def timeline(
    cluster: Cluster, namespace: str, pod_name: str, watch: PodWatch, started: float
) -> dict[str, Any]:
    """Seconds since ``started`` (when the pod was created, on this machine's clock)."""
    pod = cluster.get_json("pod", pod_name, "-n", namespace)
    status = pod["status"]
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    events = cluster.get_json(
        "events", "-n", namespace, "--field-selector", f"involvedObject.name={pod_name}"
    )["items"]
    image_events = [e for e in events if e.get("reason") in ("Pulled", "Pulling")]
    fetch = timestamped_log(cluster, namespace, pod_name, "fetch-model")
    server = timestamped_log(cluster, namespace, pod_name, "server")
    ready_line = first_line(server, "startup phase=ready")
    marks: dict[str, float | None] = {
        "scheduled (API, whole s)": api_time(
            conditions.get("PodScheduled", {}).get("lastTransitionTime")
        ),
        "image present/pulled (event, whole s)": max(
            (
                api_time(e.get("lastTimestamp") or e.get("firstTimestamp")) or 0
                for e in image_events
            ),
            default=None,
        ),
        "fetch step first line": fetch[0][0] if fetch else None,
        "fetch step done (download, verify, convert)": fetch[-1][0] if fetch else None,
    }
    if ready_line is not None:
        since = float(ready_line[1].split("since_process_start=")[1].split()[0])
        marks["server process started"] = ready_line[0] - since
        for phase in ("verifying", "importing", "loading", "warming"):
            line = first_line(server, f"startup phase={phase} ")
            marks[f"{phase} done"] = line[0] if line else None
        marks["/ready 200 (server log)"] = ready_line[0]
    marks["pod Ready (watch)"] = watch.ready_seen.get(pod_name)
    out = {k: (round(v - started, 3) if v else None) for k, v in marks.items()}
    out["fetch log"] = [line for _, line in fetch][-3:]
    return out


def standalone_start_to_ready(cache_dir: Path, model_dir_name: str, warmup: str) -> float:
    """The server on this machine, on the files the pod's fetch step left: process start ->
    ready, from its own /ready (what `emotivoice-server` measures of itself)."""
    port = free_port()
    env = {**os.environ, "EMOTIVOICE_WARMUP": warmup}
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "emotivoice-server"), "--model-dir",
         str(cache_dir / model_dir_name), "--host", "127.0.0.1", "--port", str(port),
         "--precision", "fp32", "--load-format", "converted", "--device", "cpu"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    return float(json.loads(r.read())["ready_after_s"])
            except Exception:
                time.sleep(0.1)
        raise TimeoutError("the standalone server did not turn ready")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def recipe_manifests(image: str, store: ModelStore) -> list[dict[str, Any]]:
    scripts = {p.name: p.read_text() for p in (REPO / "bench").glob("*.py")
               if p.name in ("lazy_server.py", "recipe_fetch.py")}  # fmt: skip
    labels = {"app": "recipe"}
    security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": var}}}
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    mounts = [
        {"name": "recipe", "mountPath": "/recipe"},
        {"name": "models", "mountPath": "/models"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "recipe"}, "data": scripts},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "recipe", "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "tolerations": [realnode.REAL_NODE_TOLERATION],
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
                        "initContainers": [{
                            "name": "copy-model", "image": image, "env": env,
                            "command": ["python3", "/recipe/recipe_fetch.py", "--endpoint",
                                        store.endpoint, "--uri", store.uri, "--dest", "/models/m"],
                            "securityContext": security, "volumeMounts": mounts,
                        }],
                        "containers": [{
                            "name": "server", "image": image,
                            "command": ["python3", "/recipe/lazy_server.py", "--model-dir",
                                        "/models/m", "--host", "0.0.0.0", "--port", "8080"],
                            "env": [{"name": "HOME", "value": "/tmp"}],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"},
                                               "initialDelaySeconds": 30, "periodSeconds": 10},
                            "securityContext": security, "volumeMounts": mounts,
                        }],
                        "volumes": [
                            {"name": "recipe", "configMap": {"name": "recipe"}},
                            {"name": "models", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "recipe"},
            "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": "http"}]},
        },
    ]  # fmt: skip


def prepull(cluster: Cluster, image: str) -> dict[str, Any]:
    """The server image onto the node before anything is timed (both our pod and the recipe's
    then find it present): how long that took, whether it was there already, and its size
    (the registry's manifest: compressed layers, what a pull transfers)."""
    # Every name of the image and its content go (realnode.remove_image): a tag alone would
    # leave the content, and the "pull" would take milliseconds.
    first_pull = realnode.remove_image(image)
    size = sum(realnode.image_layer_sizes(image))
    began = time.time()
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "prepull"},
            "spec": {
                "restartPolicy": "Never",
                "tolerations": [realnode.REAL_NODE_TOLERATION],
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                "containers": [{"name": "pull", "image": image, "command": ["true"]}],
            },
        },
        namespace=NS,
    )
    wait_for(
        lambda: cluster.get_json("pod", "prepull", "-n", NS)["status"].get("phase") == "Succeeded",
        timeout=900,
        interval=0.5,
        what="the server image on the node",
    )
    cluster.kubectl("delete", "pod", "prepull", "-n", NS, "--wait=false")
    return {"image_pull_s": round(time.time() - began, 3), "image_bytes": size,
            "image_first_pull": first_pull}  # fmt: skip


# A pod just seen Ready reaches kube-proxy's rules a moment later (the endpoints controller,
# then kube-proxy's sync); until then a connection may be refused. The first request is sent
# again while refused, this long at most, and its latency counts from the first try: what a
# client that retries a refused connection sees.
FIRST_REQUEST_RETRY_S = 10.0


def first_and_steady(url: str) -> tuple[float, float]:
    """The first request's latency (from its first try, see FIRST_REQUEST_RETRY_S), and the
    median of the next ones (each a new text)."""
    seed = random.randrange(1 << 30)
    began = time.time()
    while True:
        try:
            post_speech(url, seed)
            break
        except urllib.error.URLError as err:
            refused = isinstance(err.reason, ConnectionRefusedError)
            if not refused or time.time() - began > FIRST_REQUEST_RETRY_S:
                raise
            time.sleep(0.05)
    first = time.time() - began
    steady = statistics.median(post_speech(url, seed + i) for i in range(1, STEADY_REQUESTS + 1))
    return first, steady


def measure(
    cluster: Cluster, images: dict[str, str], work: Path, model_dir: Path | None = None
) -> dict[str, Any]:
    store = deploy_model_store(cluster, images["s3"], work, STORE, model_dir)
    cluster.kubectl("create", "namespace", NS, check=False)
    credentials_secret(cluster, NS, STORE)
    result: dict[str, Any] = {
        "model_bytes": sum(
            f.stat().st_size for f in (model_dir or work / "model").rglob("*") if f.is_file()
        ),
        **prepull(cluster, images["server-cpu"]),
    }
    manifest = evs_manifest(NAME, store)
    # What users get: the server's default warm-up, not the tests' short one; the CRD's
    # default memory request and limit.
    manifest["spec"]["server"].pop("warmup")
    manifest["spec"]["server"]["resources"] = default_resources()
    cache = work / "caches"
    # The volume first, as a provisioner would have it: the claim binds as soon as it exists.
    cache_volume(cluster, NS, f"{NAME}-model", cache / NS / f"{NAME}-model")
    with PodWatch(cluster, NS, SERVER_SELECTOR) as watch:
        # 1. ours, empty cache.
        print(">> ours, empty cache", file=sys.stderr)
        cluster.apply(manifest, namespace=NS)
        pod = watch.wait_ready(set(), timeout=600)
        url = service_url(cluster, NS, NAME)
        first, steady = first_and_steady(url)
        created = watch.first_seen[pod]
        cold = timeline(cluster, NS, pod, watch, created)
        cold["first request answered through the Service"] = round(
            watch.ready_seen[pod] + first - created, 3
        )
        result["ours_cold"] = {"timeline_s": cold, "first_request_s": first, "steady_s": steady}

        # 2. ours, warm cache: the pod deleted, its replacement timed from the deletion.
        print(">> ours, warm cache (pod deleted)", file=sys.stderr)
        deleted = time.time()
        cluster.kubectl("delete", "pod", pod, "-n", NS, "--wait=false")
        replacement = watch.wait_ready({pod}, timeout=600)
        first_w, steady_w = first_and_steady(url)
        warm = timeline(cluster, NS, replacement, watch, deleted)
        warm["first request answered through the Service"] = round(
            watch.ready_seen[replacement] + first_w - deleted, 3
        )
        result["ours_warm"] = {"timeline_s": warm, "first_request_s": first_w, "steady_s": steady_w}
        deployment = cluster.get_json("deployment", NAME, "-n", NS)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        result["memory"] = {
            "rendered_resources": container["resources"],
            "peak_by_container": dict(watch.peak_memory),
        }
        warmup = next(e["value"] for e in container["env"] if e["name"] == "EMOTIVOICE_WARMUP")
        model_dir_name = Path(container["args"][container["args"].index("--model-dir") + 1]).name

    # 3. standalone, on the very files the fetch step verified.
    print(">> the server standalone on this machine", file=sys.stderr)
    result["standalone_start_to_ready_s"] = standalone_start_to_ready(
        cache / NS / f"{NAME}-model", model_dir_name, warmup
    )

    # 4. the common recipe, empty cache.
    print(
        ">> the common recipe (lazy server, /health probe after 30 s, plain copy)", file=sys.stderr
    )
    with PodWatch(cluster, NS, "app=recipe") as watch:
        cluster.apply(recipe_manifests(images["server-cpu"], store), namespace=NS)
        recipe_pod = watch.wait_ready(set(), timeout=600)
        recipe_url = service_url(cluster, NS, "recipe")
        recipe_first, recipe_steady = first_and_steady(recipe_url)
        created = watch.first_seen[recipe_pod]
        result["recipe"] = {
            "pod_ready_s": round(watch.ready_seen[recipe_pod] - created, 3),
            "first_answer_s": round(watch.ready_seen[recipe_pod] + recipe_first - created, 3),
            "first_request_s": recipe_first,
            "steady_s": recipe_steady,
        }
    return result


# The default memory limit must hold the measured peak working set this many times over
# (docs/reference/server-api.md, "Memory"): growth with new input lengths is not bounded yet.
MEMORY_MARGIN = 1.5


def _quantity_bytes(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def memory_limit_over_peak(result: dict[str, Any]) -> float:
    """The rendered memory limit over the server container's peak working set (kubelet)."""
    limit = result["memory"]["rendered_resources"].get("limits", {}).get("memory")
    peaks = [
        peak.get("workingSetBytes", 0)
        for key, peak in result["memory"]["peak_by_container"].items()
        if key.endswith("/server") or key == "server"
    ] or [max(p.get("workingSetBytes", 0) for p in result["memory"]["peak_by_container"].values())]
    return _quantity_bytes(str(limit)) / max(max(peaks), 1) if limit else 0.0


def report(result: dict[str, Any]) -> dict[str, Any]:
    cold, warm = result["ours_cold"]["timeline_s"], result["ours_warm"]["timeline_s"]
    lag_cold = cold["pod Ready (watch)"] - cold["/ready 200 (server log)"]
    lag_warm = warm["pod Ready (watch)"] - warm["/ready 200 (server log)"]
    ours_first_answer = cold["first request answered through the Service"]
    ratios = {
        "ready_lag_after_server_ready_s": round(max(lag_cold, lag_warm), 3),
        "warm_restart_ready_over_standalone": round(
            warm["pod Ready (watch)"] / result["standalone_start_to_ready_s"], 3
        ),
        "first_request_over_steady_cold": round(
            result["ours_cold"]["first_request_s"] / result["ours_cold"]["steady_s"], 3
        ),
        "first_request_over_steady_warm": round(
            result["ours_warm"]["first_request_s"] / result["ours_warm"]["steady_s"], 3
        ),
        "recipe_first_answer_over_ours_cold": round(
            result["recipe"]["first_answer_s"] / ours_first_answer, 3
        ),
        "memory_limit_over_peak_working_set": round(memory_limit_over_peak(result), 3),
    }
    targets = {
        "ready_lag_after_server_ready_s": ("<=", 1.0),
        "warm_restart_ready_over_standalone": ("<=", 1.5),
        "first_request_over_steady_cold": ("<=", 1.2),
        "first_request_over_steady_warm": ("<=", 1.2),
        "memory_limit_over_peak_working_set": (">=", MEMORY_MARGIN),
        "recipe_first_answer_over_ours_cold": (">=", 3.0),
    }
    print("\ncold-start timeline, seconds since the pod was created (warm: since the delete)")
    for key in cold:
        if key == "fetch log":
            continue
        print(f"  {key:<48} {cold.get(key)!s:>8}   {warm.get(key)!s:>8}")
    print(f"  {'steady-state request (median of ' + str(STEADY_REQUESTS) + ')':<48} "
          f"{result['ours_cold']['steady_s']:>8.3f}   {result['ours_warm']['steady_s']:>8.3f}")  # fmt: skip
    pull = "a first pull" if result.get("image_first_pull") else "it may have been there"
    print(f"\nserver image onto the node (before timing, {pull}): {result['image_pull_s']:.1f} s, "
          f"{result.get('image_bytes', 0) / 1e6:.0f} MB compressed (local registry)")  # fmt: skip
    print(f"standalone process start -> ready: {result['standalone_start_to_ready_s']:.3f} s")
    recipe = result["recipe"]
    print(f"recipe: pod Ready {recipe['pod_ready_s']:.3f} s, first correct answer "
          f"{recipe['first_answer_s']:.3f} s (its first request {recipe['first_request_s']:.3f} s, "
          f"steady {recipe['steady_s']:.3f} s)")  # fmt: skip
    print("\nmemory (kubelet stats, peak while starting and serving):")
    for key, peak in result["memory"]["peak_by_container"].items():
        print(f"  {key:<48} working set {peak.get('workingSetBytes', 0) / 2**20:7.0f} MiB, "
              f"rss {peak.get('rssBytes', 0) / 2**20:7.0f} MiB")  # fmt: skip
    print(f"  rendered: {json.dumps(result['memory']['rendered_resources'])}")
    print("\ntargets:")
    for key, value in ratios.items():
        op, bound = targets[key]
        met = value <= bound if op == "<=" else value >= bound
        print(f"  {key:<40} {value:>8.3f}  (target {op} {bound})  {'met' if met else 'MISSED'}")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "coldstart.json")
    parser.add_argument(
        "--models", default="small,full",
        help="which generated models, in order: small (a few MB) and/or full (the released "
        "dimensions, .models/full from `make test-model-full`)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = [m.strip() for m in args.models.split(",") if m.strip()]
    if not sizes or set(sizes) - {"small", "full"}:
        parser.error(f"--models: {args.models!r}; give small, full or small,full")
    full = REPO / ".models" / "full"
    if "full" in sizes and not full.is_dir():
        parser.error(f"--models full needs {full}: run `make test-model-full` first")
    results: dict[str, Any] = {}
    try:
        with real_node_bench("bench-coldstart") as (cluster, images):
            for size in sizes:
                print(f"\n==== the {size} model", file=sys.stderr)
                # An operator per model: its namespace is deleted and made again between models,
                # and an operator watching one namespace by name was seen not to follow that
                # (the second model's service was never reconciled; see docs/benchmarks.md).
                install(cluster, images, BENCH)
                try:
                    with tempfile.TemporaryDirectory(prefix="evs-coldstart-") as tmp:
                        model = full if size == "full" else None
                        results[size] = measure(cluster, images, Path(tmp), model)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(results, indent=2))  # measured so far
                finally:
                    remove(cluster, BENCH)
    except NoRealNode as err:
        print(err, file=sys.stderr)
        return 2
    for size, result in results.items():
        print(f"\n======== the {size} model ({result['model_bytes'] / 1e6:.0f} MB of files)")
        result["ratios"] = report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
