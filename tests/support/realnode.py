"""The real node of hack/node.sh for the end-to-end tests and the cold-start benchmark.

Why here: the tests, the benchmark and the demo need the same facts (the node's name, taint,
registry) and the same moves (build the images, install the chart with them, run an S3 server
in the cluster, upload a model, time a pod's start); hack/node.env holds the facts, this module
the moves, so no test re-derives them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from emotivoice_operator.render.security import UID as POD_UID
from tests.support.cluster import REPO, Cluster, ClusterError, build_binaries, run_script
from tests.support.operator_process import wait_for
from tests.support.workload import cache_claims

# For the end-to-end tests and the benchmark: the server pods by label and the server workload,
# whichever kind (StatefulSet or Deployment) the cache scope made.
from tests.support.workload import server_pods as server_pods
from tests.support.workload import server_workload as server_workload

NODE_ENV = REPO / "hack" / "node.env"
IMAGES_SCRIPT = REPO / "hack" / "images.sh"
CHART = REPO / "charts" / "emotivoice-operator"
IMAGE_BUILD_TIMEOUT_S = 60 * 60
# Label of the PersistentVolumes made for a namespace's claims (deleted with the namespace).
PV_NAMESPACE_LABEL = "evs.local/claim-namespace"


def node_facts() -> dict[str, str]:
    """hack/node.env's KEY=VALUE lines."""
    facts = {}
    for line in NODE_ENV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            facts[key] = value
    return facts


FACTS = node_facts()
NODE_NAME = FACTS["NODE_NAME"]
REAL_NODE_TOLERATION: dict[str, str] = {
    "key": FACTS["REAL_NODE_TAINT_KEY"],
    "operator": "Exists",
    "effect": "NoSchedule",
}


def node_possible() -> bool:
    """Whether this machine can run the real node (`hack/node.sh check`)."""
    return (
        subprocess.run(
            ["bash", str(REPO / "hack" / "node.sh"), "check"], capture_output=True, check=False
        ).returncode
        == 0
    )


def missing_reason(cluster: Cluster) -> str | None:
    """Why the cluster has no Ready real node (None when it has one)."""
    result = cluster.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
    if result.returncode != 0:
        why = subprocess.run(
            ["bash", str(REPO / "hack" / "node.sh"), "check"],
            capture_output=True,
            text=True,
            check=False,
        ).stderr.strip()
        return (
            f"no real node {NODE_NAME} in the cluster of {cluster.kubeconfig}"
            + (f" ({why.removeprefix('node.sh: ')})" if why else "")
            + ": the end-to-end tests need hack/cluster.sh's real node (root on Linux)"
        )
    node = json.loads(result.stdout)
    ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
    if not ready or ready[0]["status"] != "True":
        return f"the real node {NODE_NAME} is not Ready"
    return None


def build_images(*names: str, on_line: Callable[[str], None] | None = None) -> dict[str, str]:
    """hack/images.sh (seconds when every image is in the registry): NAME -> reference. No
    names: what the tests run (images.sh's default; this node has no GPU, so the server's CPU
    variant)."""
    stdout = run_script(IMAGES_SCRIPT, *names, on_line=on_line)
    return dict(line.split("=", 1) for line in stdout.split() if "=" in line)


def image_layer_sizes(reference: str) -> list[int]:
    """Bytes of each layer of an image in the node's registry, bottom first (gzip: what a node
    pulls)."""
    facts = node_facts()
    path = reference.removeprefix(facts["REGISTRY"] + "/")
    name, tag = path.rsplit(":", 1)
    request = urllib.request.Request(
        f"http://{facts['REGISTRY_ADDR']}/v2/{name}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [int(layer["size"]) for layer in json.load(response)["layers"]]


def install_operator(
    cluster: Cluster,
    images: dict[str, str],
    release: str,
    namespace: str,
    watch: tuple[str, ...],
    timer_s: int = 5,
) -> None:
    """The Helm chart for real, with our images: the operator runs as a pod on the real node
    and watches only the namespaces matching ``watch`` (kopf globs), so it never reconciles a
    demo's services, nor the demo's operator its. `images` needs "server-cpu" (this node has
    no GPU); "server" (CUDA) when it was built."""
    helm = build_binaries("helm") / "helm"
    operator_repo, operator_tag = images["operator"].rsplit(":", 1)
    server_repo, cpu_tag = images["server-cpu"].rsplit(":", 1)
    gpu_repo, gpu_tag = images.get("server", images["server-cpu"]).rsplit(":", 1)
    assert gpu_repo == server_repo, "the chart has one repository for both variants"
    values = {
        "image": {"repository": operator_repo, "tag": operator_tag},
        "serverImage": {"repository": server_repo, "tag": gpu_tag, "cpuTag": cpu_tag},
        "timerIntervalSeconds": timer_s,
        "watchNamespacePatterns": list(watch),
        "tolerations": [REAL_NODE_TOLERATION],
        "extraPodTolerations": [REAL_NODE_TOLERATION],
    }
    subprocess.run(
        [str(helm), "upgrade", "--install", release, str(CHART), "--namespace", namespace,
         "--create-namespace", "--kubeconfig", str(cluster.kubeconfig), "--wait",
         "--timeout", "5m", "--values", "-"],
        input=json.dumps(values), check=True, capture_output=True, text=True, timeout=360,
    )  # fmt: skip


def uninstall_operator(cluster: Cluster, release: str, namespace: str) -> None:
    helm = build_binaries("helm") / "helm"
    subprocess.run(
        [str(helm), "uninstall", release, "--namespace", namespace, "--wait",
         "--kubeconfig", str(cluster.kubeconfig), "--timeout", "2m"],
        check=False, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


# ---- an S3 server in the cluster ------------------------------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    """Where an in-cluster S3 server listens and what it holds."""

    service: str
    namespace: str
    port: int
    access_key: str
    secret_key: str
    uri: str  # s3://BUCKET/PREFIX of the model

    @property
    def endpoint(self) -> str:
        """As pods reach it: the Service's DNS name."""
        return f"http://{self.service}.{self.namespace}.svc:{self.port}"

    @classmethod
    def of_example(cls, path: Path) -> StoreSpec:
        """The store an example manifest expects (its endpoint, Secret and uri), so the demo
        serves that example unchanged."""
        import yaml

        docs = list(yaml.safe_load_all(path.read_text()))
        secret = next(d for d in docs if d["kind"] == "Secret")["stringData"]
        source = next(d for d in docs if d["kind"] == "EmotiVoiceService")["spec"]["model"][
            "source"
        ]
        match = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc:(\d+)", source["endpoint"])
        if match is None:
            raise ValueError(f"{path}: endpoint {source['endpoint']!r} is not a Service URL")
        return cls(
            service=match.group(1),
            namespace=match.group(2),
            port=int(match.group(3)),
            access_key=secret["AWS_ACCESS_KEY_ID"],
            secret_key=secret["AWS_SECRET_ACCESS_KEY"],
            uri=source["uri"],
        )


TEST_STORE = StoreSpec(
    "s3", "evs-e2e-s3", 7070, "e2e-access-key", "e2e-secret-key-0123456789", "s3://models/test/v1"
)


def s3_manifests(image: str, store: StoreSpec) -> list[dict[str, Any]]:
    """versitygw (posix backend on an emptyDir) and its Service."""
    labels = {"app": store.service}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": store.service, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "tolerations": [REAL_NODE_TOLERATION],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "fsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "versitygw",
                                "image": image,
                                "args": [
                                    "--port",
                                    f":{store.port}",
                                    "--access",
                                    store.access_key,
                                    "--secret",
                                    store.secret_key,
                                    "--region",
                                    "us-east-1",
                                    "posix",
                                    "/data",
                                ],
                                "ports": [{"containerPort": store.port, "name": "s3"}],
                                "readinessProbe": {
                                    "tcpSocket": {"port": store.port},
                                    "periodSeconds": 1,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": store.service},
            "spec": {"selector": labels, "ports": [{"port": store.port, "targetPort": "s3"}]},
        },
    ]


def pod_ip(cluster: Cluster, namespace: str, selector: str) -> str:
    pods = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    ips = [p["status"].get("podIP") for p in pods if p["status"].get("podIP")]
    if not ips:
        raise ClusterError(f"no pod with an IP for {selector} in {namespace}")
    return ips[0]


def upload_model(endpoint: str, store: StoreSpec, directory: Path) -> dict[str, str]:
    """Every file under ``directory`` and a SHA256SUMS manifest; returns path -> sha256."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}),
    )
    bucket, _, prefix = store.uri.removeprefix("s3://").partition("/")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    sums = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        sums[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        s3.upload_file(str(path), bucket, f"{prefix}/{rel}")
    manifest = "".join(f"{digest}  {rel}\n" for rel, digest in sums.items())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/SHA256SUMS", Body=manifest.encode())
    return sums


@dataclass(frozen=True)
class ModelStore:
    """An in-cluster S3 server holding the small test model."""

    spec: StoreSpec
    sums: dict[str, str]

    @property
    def endpoint(self) -> str:
        return self.spec.endpoint

    @property
    def uri(self) -> str:
        return self.spec.uri


def deploy_model_store(
    cluster: Cluster,
    image: str,
    workdir: Path,
    store: StoreSpec = TEST_STORE,
    model_dir: Path | None = None,
) -> ModelStore:
    """versitygw as a pod, holding a generated model at ``store.uri``: ``model_dir``'s (the
    full-size one of `make test-model-full`, for instance), else the small test model."""
    from emotivoice_tts.testmodel import write_model

    if model_dir is None:
        model_dir = workdir / "model"
        if not model_dir.exists():
            write_model(model_dir, "small")
    cluster.kubectl("create", "namespace", store.namespace, check=False)
    cluster.apply(s3_manifests(image, store), namespace=store.namespace)
    cluster.kubectl(
        "rollout", "status", f"deploy/{store.service}", "-n", store.namespace,
        "--timeout=120s", timeout=130,
    )  # fmt: skip
    # Uploaded straight to the pod's address on the node's bridge.
    ip = pod_ip(cluster, store.namespace, f"app={store.service}")
    return ModelStore(store, upload_model(f"http://{ip}:{store.port}", store, model_dir))


def credentials_secret(cluster: Cluster, namespace: str, store: StoreSpec = TEST_STORE) -> None:
    """The store's key pair as the Secret `s3-credentials` the test manifests name."""
    cluster.kubectl(
        "create", "secret", "generic", "s3-credentials", "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={store.access_key}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={store.secret_key}",
    )  # fmt: skip


def evs_manifest(name: str, store: ModelStore, **spec: object) -> dict:
    """An EmotiVoiceService of the test model, CPU, one warm replica unless ``spec`` says."""
    body: dict = {
        "model": {
            "source": {
                "uri": store.uri,
                "endpoint": store.endpoint,
                "credentialsSecret": {"name": "s3-credentials"},
                "checksumManifest": "SHA256SUMS",
            },
            # Shared: the end-to-end tests and bench-coldstart delete a pod and time its
            # replacement, a new pod name under a Deployment (a StatefulSet reuses the name).
            "cache": {"size": "1Gi", "scope": "Shared"},
        },
        "server": {
            "resources": {
                "requests": {"cpu": "250m", "memory": "1Gi"},
                "limits": {"memory": "3Gi"},
            },
            "warmup": {"phrases": ["Hello."], "prompts": [""]},
            "startupTimeoutSeconds": 300,
        },
        "replicas": {"min": 1, "max": 3},
    }
    for key, value in spec.items():
        body[key] = value
    return {
        "apiVersion": "tts.emotivoice.io/v1alpha1",
        "kind": "EmotiVoiceService",
        "metadata": {"name": name},
        "spec": body,
    }


def create_service(
    cluster: Cluster,
    namespace: str,
    manifest: dict,
    cache_root: Path,
    timeout: float = 240,
    wait: bool = True,
) -> None:
    """Applies the EmotiVoiceService and gives each cache claim its pods will mount a volume
    (the one NAME-model of the Shared scope, model-cache-NAME-K per replica of the default
    PerReplica scope, reserved before the claims exist); with ``wait``, waits for phase Ready."""
    name = manifest["metadata"]["name"]
    for claim in cache_claims(manifest):
        cache_volume(cluster, namespace, claim, cache_root / namespace / claim)
    cluster.apply(manifest, namespace=namespace)
    if not wait:
        return
    wait_for(
        lambda: (
            cluster.get_json("evs", name, "-n", namespace).get("status", {}).get("phase") == "Ready"
        ),
        timeout=timeout,
        interval=1,
        what=f"EmotiVoiceService {name} Ready",
    )


# ---- what a pod's start looked like ---------------------------------------------------------


def instant(text: str) -> float:
    """An RFC 3339 timestamp (the API's, or a log line's nanosecond one) as epoch seconds."""
    text = text.replace("Z", "+00:00")
    match = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)", text)
    if match is None:
        raise ValueError(f"not a timestamp: {text!r}")
    base, frac, zone = match.groups()
    return datetime.fromisoformat(base + zone).timestamp() + float(frac or 0)


def timestamped_log(
    cluster: Cluster, namespace: str, pod: str, container: str
) -> list[tuple[float, str]]:
    """The container's log as (kubelet timestamp, line) pairs."""
    out = cluster.kubectl(
        "logs", pod, "-n", namespace, "-c", container, "--timestamps", check=False
    ).stdout
    lines = []
    for raw in out.splitlines():
        stamp, _, line = raw.partition(" ")
        with contextlib.suppress(ValueError):
            lines.append((instant(stamp), line))
    return lines


def first_line(lines: list[tuple[float, str]], needle: str) -> tuple[float, str] | None:
    return next(((t, line) for t, line in lines if needle in line), None)


def start_phase_gaps(
    cluster: Cluster, namespace: str, service: str
) -> list[tuple[str, float, float]]:
    """(pod, sum of its recorded phases, its created -> Ready by the API) for every recent cold
    start in the service's status whose pod still exists and started once: what the real-node
    check compares (the phases must add up to the start within a second)."""
    status = cluster.get_json("evs", service, "-n", namespace).get("status") or {}
    out = []
    for record in (status.get("coldStarts") or {}).get("recent") or []:
        got = cluster.kubectl(
            "get", "pod", record["pod"], "-n", namespace, "-o", "json", check=False
        )
        if got.returncode != 0 or record.get("restarts"):
            continue
        pod = json.loads(got.stdout)
        ready = next(
            (c for c in pod["status"].get("conditions") or [] if c["type"] == "Ready"), None
        )
        if not ready or ready.get("status") != "True":
            continue
        api = instant(ready["lastTransitionTime"]) - instant(pod["metadata"]["creationTimestamp"])
        out.append(
            (record["pod"], sum(float(v) for v in (record.get("phases") or {}).values()), api)
        )
    return out


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def cache_volume(cluster: Cluster, namespace: str, claim: str, directory: Path) -> None:
    """A hostPath PersistentVolume bound to ``claim`` (this cluster has no provisioner).

    hostPath volumes get no fsGroup ownership change, so the directory is made the pods' uid's
    (1000, the rendered runAsUser), as a provisioner's volume would be writable to fsGroup.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, POD_UID, POD_UID)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-{claim}"},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(directory), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    cluster.kubectl(
        "label", "pv", f"{namespace}-{claim}", f"{PV_NAMESPACE_LABEL}={namespace}", "--overwrite"
    )


def main(argv: list[str] | None = None) -> int:
    """For hack/demo.sh: the steps it shares with the tests, on the cluster of KUBECONFIG.

    python -m tests.support.realnode store EXAMPLE S3_IMAGE WORKDIR
        the S3 server and model the example expects (its endpoint, Secret, uri)
    python -m tests.support.realnode volume NAMESPACE CLAIM DIRECTORY
        a hostPath PersistentVolume bound to the claim
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.support.realnode")
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("store")
    store.add_argument("example", type=Path)
    store.add_argument("image")
    store.add_argument("workdir", type=Path)
    volume = sub.add_parser("volume")
    volume.add_argument("namespace")
    volume.add_argument("claim")
    volume.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    cluster = Cluster(
        kubeconfig=Path(os.environ["KUBECONFIG"]),
        kubectl_path=build_binaries("kubectl") / "kubectl",
    )
    if args.command == "store":
        spec = StoreSpec.of_example(args.example)
        served = deploy_model_store(cluster, args.image, args.workdir, spec)
        print(f"{len(served.sums)} files and SHA256SUMS in {spec.uri} at {spec.endpoint}")
    else:
        cache_volume(cluster, args.namespace, args.claim, args.directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
