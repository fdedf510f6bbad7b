"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

# The release: pyproject.toml's version, its one spelling (the chart's appVersion must agree:
# tests/chart/test_chart.py). The default images carry it as their tag.
DISTRIBUTION = "emotivoice-warm-operator"
VERSION = version(DISTRIBUTION)
DEFAULT_SERVER_IMAGE = f"emotivoice/server:{VERSION}"
DEFAULT_SERVER_CPU_IMAGE = f"emotivoice/server:{VERSION}-cpu"
DEFAULT_PREWARM_IMAGE = f"emotivoice/operator:{VERSION}"


@dataclass(frozen=True)
class OperatorSettings:
    # Image of server pods whose spec.server.image is empty: the CUDA variant, for GPU pods...
    server_image: str = DEFAULT_SERVER_IMAGE
    # ... and the CPU variant, for pods without GPUs.
    server_cpu_image: str = DEFAULT_SERVER_CPU_IMAGE
    # Image of the pre-warm CronJobs' pods: the operator's (a client, no torch).
    prewarm_image: str = DEFAULT_PREWARM_IMAGE
    # Seconds between the timer's passes: warm-window edges, request expiry, status refresh.
    timer_interval: float = 30.0
    # Tolerations added to every pod the operator creates (e.g. a cluster's dedicated-node taint).
    extra_tolerations: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # Port of the operator's /metrics (0: not served).
    metrics_port: int = 0
    # Ask a server pod that just turned Ready for its own start-up phases (GET /ready, once,
    # bounded): reconcile/server_phases.py. Off: one "server" phase from the pod's states.
    ask_servers: bool = True
    # Reconcile passes run at once (reconcile/queue.py); more than the API server and the
    # operator's one Python process can use only adds contention.
    reconcile_workers: int = 4

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorSettings:
        env = dict(os.environ if env is None else env)
        tolerations = json.loads(env.get("EMOTIVOICE_EXTRA_TOLERATIONS", "[]"))
        if not isinstance(tolerations, list):
            raise ValueError("EMOTIVOICE_EXTRA_TOLERATIONS must be a JSON list of tolerations")
        return cls(
            server_image=env.get("EMOTIVOICE_SERVER_IMAGE", DEFAULT_SERVER_IMAGE),
            # Only the GPU image given (an older chart): it serves CPU pods as well.
            server_cpu_image=env.get(
                "EMOTIVOICE_SERVER_CPU_IMAGE",
                env.get("EMOTIVOICE_SERVER_IMAGE", DEFAULT_SERVER_CPU_IMAGE),
            ),
            prewarm_image=env.get("EMOTIVOICE_PREWARM_IMAGE", DEFAULT_PREWARM_IMAGE),
            timer_interval=float(env.get("EMOTIVOICE_TIMER_INTERVAL", "30")),
            extra_tolerations=tuple(tolerations),
            metrics_port=int(env.get("EMOTIVOICE_METRICS_PORT", "0")),
            ask_servers=env.get("EMOTIVOICE_ASK_SERVERS", "1") not in ("0", "false", "no"),
            reconcile_workers=int(env.get("EMOTIVOICE_RECONCILE_WORKERS", "4")),
        )
