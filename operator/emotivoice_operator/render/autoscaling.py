"""The HorizontalPodAutoscaler that holds the warm floor as its minReplicas.

The HPA cannot hold 0 replicas, so with a floor of 0 (scale to zero outside windows) there is no
HPA at all and the server workload itself is rendered with 0 replicas (see deployment.py).
"""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import RenderContext
from emotivoice_operator.render.deployment import workload_kind


def server_hpa(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any] | None:
    if ctx.warm_floor == 0:
        return None
    replicas = spec.replicas
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": labels.metadata(
            ctx.owner, names.server(ctx.owner.name), names.COMPONENT_SERVER
        ),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": workload_kind(ctx),
                "name": names.server(ctx.owner.name),
            },
            "minReplicas": ctx.warm_floor,
            # The CRD keeps every window's replicas <= max, so the floor never exceeds max.
            "maxReplicas": max(replicas.max, ctx.warm_floor),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": replicas.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
            "behavior": {
                # Scale-down delay: replicas leave only after load (or a window) has been gone this long.
                "scaleDown": {
                    "stabilizationWindowSeconds": replicas.scale_down_delay_seconds,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
                # Scale up at once: a cold start is what this whole product avoids.
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                },
            },
        },
    }
