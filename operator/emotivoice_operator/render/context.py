"""The inputs of rendering besides the spec: who owns the children and what the cluster decided.

Everything that varies with time or cluster state (the warm floor now, the operator's default
image) arrives here as plain values, so ``render`` stays a pure function of its arguments. The
warm windows arrive parsed (``desired.py`` parses them once per pass, with the learned lead):
the renderer never reads ``spec.warmPool.windows`` itself, so a window is validated, and its
errors named, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emotivoice_operator.crd import KIND, api_version
from emotivoice_operator.crd.spec import CacheScope
from emotivoice_operator.windows import Window


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": api_version(),
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class RenderContext:
    owner: Owner
    # Replica floor in force now: max(replicas.min, active windows, unexpired warm requests).
    warm_floor: int
    # Server image used when spec.server.image is empty (the Helm chart's serverImage value).
    default_server_image: str
    # Extra tolerations every server pod gets (e.g. a test cluster's simulated-node taint).
    extra_tolerations: tuple[dict[str, Any], ...] = ()
    # Image of the pre-warm jobs (the chart: the operator's own); empty: the server image.
    prewarm_image: str = ""
    # Server image for pods without GPUs (the CPU variant, no CUDA libraries: GBs smaller);
    # empty: default_server_image, which runs on CPU too.
    default_server_cpu_image: str = ""
    # The cache scope in force (emotivoice_operator.cache_scope decides it, an unset scope
    # from what exists in the cluster): which workload and volume the server pods get.
    cache_scope: CacheScope = "PerReplica"
    # spec.warmPool's windows as windows.parse_windows returns them (leadTime: auto ones with
    # the lead in force): one pre-warm CronJob each.
    windows: tuple[Window, ...] = ()
    # The EmotiVoiceService whose server pods the Service selects now: the owner's own, or
    # its fallback's while it has no Ready pod (emotivoice_operator.fallback.route); empty:
    # the owner's.
    serving_pool: str = ""
