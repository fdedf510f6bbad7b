"""An S3 server in the cluster (versitygw as a pod on the real node) holding the small generated
test model, as the end-to-end tests, the cold-start benchmark and the demo need it."""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cluster import Cluster, ClusterError
from tests.support.realnode import REAL_NODE_TOLERATION


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
    # The model's files as uploaded: `start_store` uploads them again into a new pod.
    model_dir: Path | None = None

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
    return ModelStore(store, upload_model(f"http://{ip}:{store.port}", store, model_dir), model_dir)


def stop_store(cluster: Cluster, store: ModelStore) -> None:
    """The store down (the fault suite's): its Deployment scaled to 0, waited for until its pod
    is gone, so its Service has no endpoint and refuses every connection. The pod's emptyDir goes
    with it: ``start_store`` uploads the model again."""
    spec = store.spec
    cluster.kubectl("scale", f"deploy/{spec.service}", "-n", spec.namespace, "--replicas=0")
    cluster.kubectl(
        "wait", "--for=delete", "pod", "-l", f"app={spec.service}", "-n", spec.namespace,
        "--timeout=120s", timeout=130,
    )  # fmt: skip


def start_store(cluster: Cluster, image: str, store: ModelStore) -> ModelStore:
    """Brings ``stop_store``'s store back: one pod again, the same model uploaded into it (the
    same files, so the same checksums: a cache verified before stays valid)."""
    spec = store.spec
    assert store.model_dir is not None, "a store deployed by deploy_model_store"
    cluster.kubectl("scale", f"deploy/{spec.service}", "-n", spec.namespace, "--replicas=1")
    back = deploy_model_store(cluster, image, store.model_dir.parent, spec, store.model_dir)
    assert back.sums == store.sums, "the store came back with another model"
    return back


def credentials_secret(cluster: Cluster, namespace: str, store: StoreSpec = TEST_STORE) -> None:
    """The store's key pair as the Secret `s3-credentials` the test manifests name."""
    cluster.kubectl(
        "create", "secret", "generic", "s3-credentials", "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={store.access_key}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={store.secret_key}",
    )  # fmt: skip
