"""The ClusterIP Service in front of the ready server pods: the owner's, or its fallback's
while it has none (``RenderContext.serving_pool``; see emotivoice_operator.fallback)."""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import Owner, RenderContext


def server_service(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": labels.metadata(
            ctx.owner, names.server(ctx.owner.name), names.COMPONENT_SERVER
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.selector(_serving(ctx), names.COMPONENT_SERVER),
            "ports": [
                {
                    "name": names.HTTP_PORT_NAME,
                    "port": spec.server.port,
                    "targetPort": names.HTTP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def _serving(ctx: RenderContext) -> Owner:
    """The owner whose server pods are selected: only the name enters the selector."""
    pool = ctx.serving_pool or ctx.owner.name
    return Owner(pool, ctx.owner.namespace, "")
