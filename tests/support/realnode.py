"""The real node of hack/node.sh, for the end-to-end tests, the benchmarks and the demo: its
facts (name, taint, registry: hack/node.env), whether this machine or a cluster has it, and the
images in its registry.

Why here: the tests, the benchmarks and the demo need the same facts; hack/node.env holds them,
this module reads them, so no test re-derives them. The moves on top of the node have a module
each: helm.py (the chart with our images), store.py (an S3 server holding the test model),
services.py (an EmotiVoiceService of that model and its cache volumes), timestamps.py (what a
pod's start looked like), demo.py (the steps hack/demo-real-node.sh shares with the tests).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable

from tests.support.cluster import REPO, Cluster, run_script

NODE_ENV = REPO / "hack" / "node.env"
IMAGES_SCRIPT = REPO / "hack" / "images.sh"
IMAGE_BUILD_TIMEOUT_S = 60 * 60


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


class ImageInUse(RuntimeError):
    """Another pod's container on the node runs the image (the message names them): containerd
    keeps its layers unpacked for it, so no removal can make the next pull a real one."""


def _ctr(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    from tests.support.cluster import state_dir

    sock = str(state_dir() / "node" / "run" / "containerd.sock")
    return subprocess.run(
        ["ctr", "-a", sock, "-n", "k8s.io", *args],
        capture_output=True, text=True, check=False, timeout=timeout,
    )  # fmt: skip


def _image_names(image: str) -> list[str] | None:
    """Every name containerd holds for ``image``'s manifest (the CRI records one image under
    the tag, the repository digest and the image id); [] when absent, None when containerd
    could not be asked."""
    listed = _ctr("images", "ls")
    if listed.returncode != 0:
        return None
    rows = [line.split() for line in listed.stdout.splitlines()[1:] if line.strip()]
    digest = next((row[2] for row in rows if row[0] == image), None)
    return [row[0] for row in rows if len(row) > 2 and row[2] == digest] if digest else []


def _repository(ref: str) -> str:
    """``host:port/name:tag`` or ``host:port/name@sha256:...`` -> ``host:port/name``."""
    name = ref.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def image_users(image: str, besides: str) -> list[str]:
    """The pods outside namespace ``besides`` whose containers on the node run ``image`` or
    another tag of its repository (namespace/pod): a demo's server, say, built from another
    tree. The tags share their large layers (the base, torch), which stay unpacked for such a
    container, and a pull finds them: while one runs, ``remove_image`` cannot make the next pull
    a real one. Only running containers count: a deleted pod's stopped ones are the caller's to
    remove (``remove_pod_containers``) or the kubelet's to collect, not a reason to give up."""
    repository = _repository(image)
    tasks = _ctr("tasks", "ls").stdout.splitlines()[1:]
    running = {row[0] for row in (t.split() for t in tasks) if len(row) > 2 and row[2] == "RUNNING"}
    users = set()
    for cid, record in _containers().items():
        if cid not in running or _repository(str(record.get("Image") or "")) != repository:
            continue
        labels: dict[str, str] = record.get("Labels") or {}  # type: ignore[assignment]
        ns = labels.get("io.kubernetes.pod.namespace")
        if ns and ns != besides:
            users.add(f"{ns}/{labels.get('io.kubernetes.pod.name')}")
    return sorted(users)


def remove_image(image: str, besides: str | None = None) -> bool:
    """Removes ``image`` from the real node's containerd (its content collected at once), so the
    next pod that needs it pulls it as a node that never ran it would; False when containerd
    could not be asked. Every name of the same manifest goes, or its content stays referenced
    and the next "pull" takes milliseconds. With ``besides`` (the caller's namespace), raises
    ImageInUse first where a pod of another namespace runs the image."""
    if besides is not None:
        users = image_users(image, besides)
        if users:
            raise ImageInUse(
                f"{_repository(image)} (this tag or another) runs in {', '.join(users)} on the "
                "node: the layers they share stay unpacked, so no real pull can be timed; stop "
                "them first (`make demo-down` for the demo's)"
            )
    names = _image_names(image)
    if names is None:
        return False
    if not names:
        return True  # not there
    return _ctr("images", "rm", "--sync", *names, timeout=120).returncode == 0


def remove_pod_containers(pod: str, namespace: str) -> None:
    """Removes what containerd still holds of a deleted pod (its stopped containers and sandbox,
    which the kubelet's garbage collection would remove within a minute): they keep the image's
    content referenced, so removing the image would not make the next pull a real one."""
    for cid in _pod_containers(pod, namespace):
        _ctr("tasks", "kill", "-s", "SIGKILL", cid, timeout=30)
        _ctr("tasks", "rm", "-f", cid, timeout=30)
        _ctr("containers", "rm", cid, timeout=30)


def _containers() -> dict[str, dict[str, object]]:
    """containerd's record of every container on the node (its image, its labels), by id."""
    listed = _ctr("containers", "ls", "-q")
    if listed.returncode != 0:
        raise subprocess.CalledProcessError(listed.returncode, listed.args, stderr=listed.stderr)
    out = {}
    for cid in listed.stdout.split():
        info = _ctr("containers", "info", cid, timeout=30)
        if info.returncode == 0:
            out[cid] = json.loads(info.stdout)
    return out


def _pod_containers(pod: str, namespace: str) -> dict[str, dict[str, object]]:
    """containerd's records of one pod's containers (sandbox included), by container id."""
    out = {}
    for cid, record in _containers().items():
        labels: dict[str, str] = record.get("Labels") or {}  # type: ignore[assignment]
        if (
            labels.get("io.kubernetes.pod.name") == pod
            and labels.get("io.kubernetes.pod.namespace") == namespace
        ):
            out[cid] = record
    return out


def container_created(pod: str, namespace: str) -> dict[str, float]:
    """When containerd created each container of one pod (epoch seconds, nanosecond precision:
    the API's stamps have whole seconds): ``sandbox`` (the pod's pause container), then each
    container by name. Between the sandbox and the first container the kubelet ensures the
    image: a pull happens there, or nothing does."""
    from tests.support.timestamps import instant

    out: dict[str, float] = {}
    for cid, record in _pod_containers(pod, namespace).items():
        labels: dict[str, str] = record.get("Labels") or {}  # type: ignore[assignment]
        kind = labels.get("io.cri-containerd.kind")
        name = "sandbox" if kind == "sandbox" else labels.get("io.kubernetes.container.name", cid)
        out[name] = instant(str(record["CreatedAt"]))
    return out
