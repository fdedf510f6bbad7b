"""``render(spec, ctx) -> manifests``: every child of one EmotiVoiceService, as plain dicts.

Pure and deterministic: no API client, no clock, no randomness; the same input gives
byte-identical output (tests/operator/test_render.py), so reconciling an unchanged resource
writes nothing.
"""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render.autoscaling import server_hpa
from emotivoice_operator.render.context import Owner, RenderContext
from emotivoice_operator.render.deployment import server_workload
from emotivoice_operator.render.prewarm import prewarm_cronjobs, prewarm_rbac
from emotivoice_operator.render.service import server_service
from emotivoice_operator.render.storage import model_cache_pvc

Manifest = dict[str, Any]

__all__ = ["Manifest", "Owner", "RenderContext", "render"]


def render(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> list[Manifest]:
    """Children in apply order: identities first, then storage, workload, scaling, schedules."""
    manifests: list[Manifest | None] = [
        *prewarm_rbac(spec, ctx),
        model_cache_pvc(spec, ctx),
        server_service(spec, ctx),
        server_workload(spec, ctx),
        server_hpa(spec, ctx),
        *prewarm_cronjobs(spec, ctx),
    ]
    return [m for m in manifests if m is not None]
