"""The PersistentVolumeClaim that caches the model across pod restarts."""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import RenderContext


def model_cache_pvc(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any]:
    cache = spec.model.cache
    pvc_spec: dict[str, Any] = {
        "accessModes": [cache.access_mode],
        "resources": {"requests": {"storage": str(cache.size)}},
    }
    if cache.storage_class_name:
        pvc_spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        # A retained cache has no owner: garbage collection must not follow the resource's deletion.
        "metadata": labels.metadata(
            ctx.owner,
            names.model_cache(ctx.owner.name),
            names.COMPONENT_CACHE,
            owned=not cache.retain_on_delete,
        ),
        "spec": pvc_spec,
    }
