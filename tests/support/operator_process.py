"""Runs the real operator as a subprocess under the Helm chart's identity, for integration tests.

The chart is installed for real (`helm upgrade --install`): its ServiceAccount, ClusterRole and
binding exist exactly as in production. The chart's own operator pod cannot run here (no
container runtime: it stays Pending), so the operator runs as a local process authenticated
with a token of the chart's ServiceAccount. A permission the chart lacks fails here too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import (
    KWOK_TOLERATION,
    REPO,
    TEST_NAMESPACE_PREFIX,
    Cluster,
    build_binaries,
)

CHART = REPO / "charts" / "emotivoice-operator"
CRDS = REPO / "crds"
SYSTEM_NAMESPACE = "emotivoice-system"
RELEASE = "evo"
ACCOUNT = "evo-emotivoice-operator"  # the chart's fullname for release "evo"
# What the tests' operators watch (kopf globs): their own namespaces only.
TEST_NAMESPACES = (f"{TEST_NAMESPACE_PREFIX}*",)


def install_crd(cluster: Cluster) -> None:
    """Applies the CRDs (crds/: EmotiVoiceService, EmotiVoiceCalendar) and waits until they are
    Established.

    Right after the create, the CRD's status may hold no conditions yet, which `kubectl wait`
    reports as an error (".status.conditions accessor error") instead of waiting: it is asked
    again, bounded."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    wait_for(
        lambda: cluster.kubectl(
            "wait", "--for=condition=Established", "crd/emotivoiceservices.tts.emotivoice.io",
            "crd/emotivoicecalendars.tts.emotivoice.io", "--timeout=30s", check=False, timeout=40,
        ).returncode == 0,
        timeout=90, interval=1, what="the CRD Established",
    )  # fmt: skip


def operator_kubeconfig(
    cluster: Cluster, directory: Path, namespaces: tuple[str, ...] = TEST_NAMESPACES
) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (not cluster-admin), with
    the chart's permissions for watching ``namespaces`` (kopf globs)."""
    helm = build_binaries("helm") / "helm"
    subprocess.run(
        [str(helm), "upgrade", "--install", RELEASE, str(CHART), "--namespace", SYSTEM_NAMESPACE,
         "--create-namespace", "--kubeconfig", str(cluster.kubeconfig), "--timeout", "2m",
         "--values", "-"],
        input=json.dumps({"watchNamespacePatterns": list(namespaces)}),
        check=True, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    cluster.kubectl(
        "wait", "--for=create", f"serviceaccount/{ACCOUNT}", "-n", SYSTEM_NAMESPACE, "--timeout=60s"
    )
    return service_account_kubeconfig(cluster, SYSTEM_NAMESPACE, ACCOUNT, directory)


def service_account_kubeconfig(
    cluster: Cluster, namespace: str, account: str, directory: Path
) -> Path:
    """A kubeconfig for the same cluster that authenticates with one ServiceAccount's token."""
    token = cluster.kubectl(
        "create", "token", account, "-n", namespace, "--duration=3h"
    ).stdout.strip()
    admin_cluster = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--minify").stdout)[
        "clusters"
    ][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [admin_cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": account,
                "context": {
                    "cluster": admin_cluster["name"],
                    "user": account,
                    "namespace": namespace,
                },
            }
        ],
        "current-context": account,
    }
    path = directory / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


class OperatorProcess:
    """The operator subprocess: start, stop (gracefully or by SIGKILL), its log, and its own
    metrics (on ``metrics_port``, a free port: ``passes()`` counts the reconcile passes run)."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        timer_interval: float = 3.0,
        namespaces: tuple[str, ...] = TEST_NAMESPACES,
        peering: str | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.timer_interval = timer_interval
        self.namespaces = namespaces
        # kopf peering: replicas of one operator elect the active one (the fault suite's HA).
        self.peering = peering
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "EMOTIVOICE_TIMER_INTERVAL": str(self.timer_interval),
            "EMOTIVOICE_METRICS_PORT": str(self.metrics_port),
            "EMOTIVOICE_SERVER_IMAGE": "emotivoice/server:test",
            # Pods must tolerate the simulated nodes' taint to be scheduled there.
            "EMOTIVOICE_EXTRA_TOLERATIONS": json.dumps([KWOK_TOLERATION]),
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emotivoice_operator.main",
                "run",
                "--liveness",
                # kopf reads port 0 as port 80: a real free port, or a demo's operator on 80
                # (or another test's) makes this one fail to start.
                f"http://127.0.0.1:{free_port()}/healthz",
                *(f"--namespace={ns}" for ns in self.namespaces),
                *([f"--peering={self.peering}"] if self.peering else []),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """The operator's own samples (metrics.py) by name, labelled ones summed over their labels
        (histograms: ``_count`` and ``_sum``, no buckets)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    continue
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
        return out

    def passes(self) -> int:
        """Reconcile passes run since the operator started (of every service it watches)."""
        return int(self.metrics().get("emotivoice_reconcile_seconds_count", 0))

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"operator exited:\n{self.log()[-4000:]}"
        )


@contextmanager
def running_operator(cluster: Cluster, directory: Path) -> Iterator[OperatorProcess]:
    install_crd(cluster)
    op = OperatorProcess(operator_kubeconfig(cluster, directory), directory / "operator.log")
    op.start()
    try:
        yield op
    finally:
        op.stop()


def wait_for(predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    """Polls ``predicate`` until it returns a truthy value; fails with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the object may not exist yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
