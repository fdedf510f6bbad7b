"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, TypeVar

# The release: pyproject.toml's version, its one spelling (the chart's appVersion must agree:
# tests/chart/test_chart.py). The default images carry it as their tag.
DISTRIBUTION = "emotivoice-warm-operator"
VERSION = version(DISTRIBUTION)
DEFAULT_SERVER_IMAGE = f"emotivoice/server:{VERSION}"
DEFAULT_SERVER_CPU_IMAGE = f"emotivoice/server:{VERSION}-cpu"
DEFAULT_PREWARM_IMAGE = f"emotivoice/operator:{VERSION}"
# The pod sandbox image every node already holds (the kubelet's and containerd's default): the
# warm path's pods run it as their main container, so they pull nothing of their own.
DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
# The chart's PriorityClass of the capacity placeholders (negative value, preemptionPolicy Never).
DEFAULT_PLACEHOLDER_PRIORITY_CLASS = "emotivoice-placeholder"
N = TypeVar("N", int, float)


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
    # bounded): tuning/prober.py. Off: one "server" phase from the pod's states.
    ask_servers: bool = True
    # Reconcile passes run at once (controller/queue.py); more than the API server and the
    # operator's one Python process can use only adds contention.
    reconcile_workers: int = 4
    # The warm path's main container (render/warmpath.py): the nodes' pod sandbox image.
    pause_image: str = DEFAULT_PAUSE_IMAGE
    # The capacity placeholders' PriorityClass (the chart installs it).
    placeholder_priority_class: str = DEFAULT_PLACEHOLDER_PRIORITY_CLASS

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
            timer_interval=_number(
                env, "EMOTIVOICE_TIMER_INTERVAL", float, cls.timer_interval, above=0.0
            ),
            extra_tolerations=tuple(tolerations),
            metrics_port=_number(env, "EMOTIVOICE_METRICS_PORT", int, cls.metrics_port, least=0),
            ask_servers=env.get("EMOTIVOICE_ASK_SERVERS", "1") not in ("0", "false", "no"),
            reconcile_workers=_number(
                env, "EMOTIVOICE_RECONCILE_WORKERS", int, cls.reconcile_workers, least=1
            ),
            pause_image=env.get("EMOTIVOICE_PAUSE_IMAGE") or DEFAULT_PAUSE_IMAGE,
            placeholder_priority_class=env.get("EMOTIVOICE_PLACEHOLDER_PRIORITY_CLASS")
            or DEFAULT_PLACEHOLDER_PRIORITY_CLASS,
        )


def _number(
    env: dict[str, str],
    name: str,
    kind: type[N],
    default: N,
    *,
    least: N | None = None,
    above: N | None = None,
) -> N:
    """``env[name]`` as a number (``default`` when unset), or an error that names the variable
    (the operator refuses to start rather than run with a setting it misread)."""
    text = env.get(name, "")
    if text == "":
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if least is not None and value < least:
        raise ValueError(f"{name} must be at least {least}, got {text!r}")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be more than {above}, got {text!r}")
    return value
