"""Access to a real Kubernetes API for the integration tests.

Why: the operator's bugs that matter (schemas the API server rejects, owner references that do not
garbage-collect, pods that never schedule) only show against a real API server. Either the user
points KUBECONFIG at a cluster (kind, a shared one, the local one started by `make cluster`), or
the tests start the local control plane themselves (`hack/cluster.sh up`) and stop it at the end
(tests/support/cluster_sessions.py: which session stops it).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cluster_sessions import (
    LOCK_HELD_ENV,
    ControlPlane,
    SessionRegistry,
    lock_path,
)

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "hack" / "cluster.sh"
BUILD_SCRIPT = REPO / "hack" / "build-binaries.sh"

# The fake-node contract of hack/cluster.sh, for tests that schedule pods there.
KWOK_TOLERATION: dict[str, str] = {
    "key": "kwok.x-k8s.io/node",
    "operator": "Exists",
    "effect": "NoSchedule",
}
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"

# Every namespace an integration test makes starts so (the ``namespace`` fixture), and the
# operators the tests run watch only these: a demo's operator in the same cluster watches its
# own namespace, and neither reconciles the other's services.
TEST_NAMESPACE_PREFIX = "evs-test-"

# A cold build of the Kubernetes binaries takes many minutes; starting the cluster well under one.
BUILD_TIMEOUT_S = 60 * 60
# With the real node, `up` also starts containerd, the kubelet and CoreDNS (seconds when cached).
UP_TIMEOUT_S = 600


class ClusterError(RuntimeError):
    """The cluster could not be reached or a kubectl call failed; the message says which and why."""


@dataclass(frozen=True)
class ClusterChoice:
    """Which cluster a test session uses: an external kubeconfig, or the local control plane."""

    external_kubeconfig: Path | None

    @property
    def local(self) -> bool:
        return self.external_kubeconfig is None


def choose_cluster(environ: Mapping[str, str]) -> ClusterChoice:
    """KUBECONFIG wins unless EVS_LOCAL_CLUSTER=1 asks for the local control plane.

    Pure (reads only the mapping it is given) so the rule is unit-tested without a cluster.
    """
    kubeconfig = environ.get("KUBECONFIG", "").strip()
    if not kubeconfig or environ.get("EVS_LOCAL_CLUSTER") == "1":
        return ClusterChoice(external_kubeconfig=None)
    if os.pathsep in kubeconfig:
        raise ClusterError(
            f"KUBECONFIG lists several files ({kubeconfig!r}); the tests need one: "
            "run `kubectl config view --flatten > one.yaml` and set KUBECONFIG=one.yaml"
        )
    path = Path(kubeconfig).expanduser()
    if not path.is_file():
        raise ClusterError(
            f"KUBECONFIG={kubeconfig!r} is not a file; point it at a kubeconfig or unset it "
            "to let the tests start the local control plane"
        )
    return ClusterChoice(external_kubeconfig=path)


def run_script(
    script: Path,
    *args: str,
    on_line: Callable[[str], None] | None = None,
    timeout: float = BUILD_TIMEOUT_S,
) -> str:
    """Runs one of hack/'s build scripts and returns its stdout; its progress lines (stderr)
    go to ``on_line`` as they come, so a first, long build is visible."""
    proc = subprocess.Popen(
        ["bash", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if on_line else None,
        text=True,
    )
    try:
        if on_line is not None:
            assert proc.stderr is not None
            for line in proc.stderr:
                on_line(line.rstrip("\n"))
        stdout, _ = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise ClusterError(f"hack/{script.name} {' '.join(args)} failed (exit {proc.returncode})")
    return stdout


def build_binaries(*names: str, on_line: Callable[[str], None] | None = None) -> Path:
    """Runs hack/build-binaries.sh (seconds when cached) and returns its bin directory."""
    return Path(run_script(BUILD_SCRIPT, *names, on_line=on_line).strip().splitlines()[-1])


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """hack/cluster.sh's state directory: EVS_CLUSTER_DIR (relative to the working directory)
    or .cluster/ in the repository. The script is always handed this path (``_cluster_script``),
    so it and the session registry name the same directory and the same lock."""
    env = os.environ if environ is None else environ
    state = Path(env.get("EVS_CLUSTER_DIR") or REPO / ".cluster")
    return state if state.is_absolute() else Path.cwd() / state


def _cluster_script(
    *args: str, lock_held: bool = False, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs hack/cluster.sh on ``state_dir()``; ``lock_held``: the caller holds its lock."""
    state = state_dir()
    env = {**os.environ, "EVS_CLUSTER_DIR": str(state)}
    if lock_held:
        env[LOCK_HELD_ENV] = str(lock_path(state))
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _checked(*args: str, timeout: float = 60) -> None:
    """One of hack/cluster.sh's commands, run inside the registry's lock; raises with its log."""
    result = _cluster_script(*args, lock_held=True, timeout=timeout)
    if result.returncode != 0:
        raise ClusterError(
            f"hack/cluster.sh {' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stderr[-4000:]}"
        )


def local_kubeconfig() -> Path:
    """The local control plane's admin kubeconfig, as hack/cluster.sh names it."""
    line = _cluster_script("env").stdout.strip()
    prefix = "export KUBECONFIG="
    if not line.startswith(prefix):
        raise ClusterError(f"unexpected output of `hack/cluster.sh env`: {line!r}")
    return Path(line.removeprefix(prefix))


def local_sessions() -> SessionRegistry:
    """The test sessions of the local control plane, which hack/cluster.sh starts and stops."""
    return SessionRegistry(
        state_dir(),
        ControlPlane(
            healthy=lambda: _cluster_script("status").returncode == 0,
            # No retry: the one start failure seen in CI (kwok "exited" with an empty log) was
            # the script checking a child before it had exec'd; hack/cluster.sh now waits.
            up=lambda: _checked("up", timeout=UP_TIMEOUT_S),
            down=lambda: _checked("down"),
        ),
    )


def local_cluster_acquire() -> Path:
    """Starts the local control plane if needed, registers this session; returns the kubeconfig.

    Concurrent test sessions share one cluster; only the last one stops it, and only if a test
    session started it (tests/support/cluster_sessions.py).
    """
    started = time.monotonic()
    if local_sessions().acquire(os.getpid()):
        print(f"local control plane ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return local_kubeconfig()


def local_cluster_release() -> None:
    print(f"local control plane: {local_sessions().release(os.getpid()).value}", file=sys.stderr)


@dataclass(frozen=True)
class Cluster:
    """A reachable cluster: its kubeconfig and a kubectl bound to it."""

    kubeconfig: Path
    kubectl_path: Path

    @property
    def env(self) -> dict[str, str]:
        """The process environment for clients (kopf, the operator) that read KUBECONFIG."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster; with check, a failure raises with kubectl's stderr."""
        cmd = [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} failed (exit {result.returncode}): {result.stderr.strip()}"
            )
        return result

    def get_json(self, *args: str) -> dict[str, Any]:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def fake_nodes(self, resource: str | None = None) -> list[str]:
        """Names of the KWOK-managed nodes (with `resource` allocatable, if given).

        Fails with the fix when there are none: a cluster from KUBECONFIG (kind, ...) needs KWOK
        running and the fake nodes of `hack/cluster.sh nodes` before pods can become Ready here.
        """
        names = [
            node["metadata"]["name"]
            for node in self.get_json("nodes")["items"]
            if node["metadata"].get("annotations", {}).get(KWOK_NODE_ANNOTATION) == "fake"
            and (resource is None or int(node["status"].get("allocatable", {}).get(resource, "0")))
        ]
        if not names:
            wanted = f" with allocatable {resource}" if resource else ""
            raise ClusterError(
                f"no KWOK fake node{wanted} in the cluster of {self.kubeconfig}: run KWOK against "
                "it and apply `hack/cluster.sh nodes | kubectl apply -f -` (the local control "
                "plane has both)"
            )
        return names

    def apply(
        self, manifest: Mapping[str, Any] | list[Mapping[str, Any]], namespace: str | None = None
    ) -> str:
        """Applies one object or a list of objects given as dicts (JSON is valid YAML)."""
        items = manifest if isinstance(manifest, list) else [manifest]
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=body).stdout


@contextlib.contextmanager
def cluster_session(environ: Mapping[str, str] | None = None) -> Iterator[Cluster]:
    """The session's cluster; the local control plane is stopped after the last session using it,
    and only if a test session started it."""
    choice = choose_cluster(os.environ if environ is None else environ)
    kubectl_path = build_binaries("kubectl") / "kubectl"
    if not choice.local:
        assert choice.external_kubeconfig is not None
        cluster = Cluster(kubeconfig=choice.external_kubeconfig, kubectl_path=kubectl_path)
        cluster.kubectl("version", timeout=30)
        yield cluster
        return
    kubeconfig = local_cluster_acquire()
    try:
        yield Cluster(kubeconfig=kubeconfig, kubectl_path=kubectl_path)
    finally:
        local_cluster_release()
