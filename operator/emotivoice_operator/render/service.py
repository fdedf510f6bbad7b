"""The ClusterIP Service in front of the ready server pods."""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import RenderContext


def server_service(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": labels.metadata(
            ctx.owner, names.server(ctx.owner.name), names.COMPONENT_SERVER
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.selector(ctx.owner, names.COMPONENT_SERVER),
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
