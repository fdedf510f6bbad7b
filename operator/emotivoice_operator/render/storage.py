"""Where the model cache lives: the Shared scope's one claim, or each replica's claim template.

PerReplica claims come from the StatefulSet's volumeClaimTemplates (deployment.py), so the
StatefulSet controller creates one per ordinal and keeps it across scale-down; Ephemeral has no
claim at all (an emptyDir per pod).
"""

from __future__ import annotations

from typing import Any

from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec
from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import RenderContext


def _claim_spec(spec: EmotiVoiceServiceSpec) -> dict[str, Any]:
    cache = spec.model.cache
    pvc_spec: dict[str, Any] = {
        "accessModes": [cache.access_mode],
        "resources": {"requests": {"storage": str(cache.size)}},
    }
    if cache.storage_class_name:
        pvc_spec["storageClassName"] = cache.storage_class_name
    return pvc_spec


def model_cache_pvc(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any] | None:
    """The Shared scope's claim NAME-model; None under the other scopes."""
    if ctx.cache_scope != "Shared":
        return None
    cache = spec.model.cache
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
        "spec": _claim_spec(spec),
    }


def replica_claim_template(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any]:
    """The PerReplica volumeClaimTemplate. The StatefulSet controller adds the selector's labels
    (component ``server``) over these; the operator finds its claims by name and instance."""
    return {
        "metadata": {
            "name": names.CACHE_VOLUME,
            "labels": labels.standard(ctx.owner, names.COMPONENT_CACHE),
        },
        "spec": _claim_spec(spec),
    }


def retention_policy(spec: EmotiVoiceServiceSpec) -> dict[str, str]:
    """Scale-down keeps every claim (the replica that comes back reuses it); deleting the
    service deletes them unless retainOnDelete."""
    return {
        "whenScaled": "Retain",
        "whenDeleted": "Retain" if spec.model.cache.retain_on_delete else "Delete",
    }


def cache_volume(spec: EmotiVoiceServiceSpec, ctx: RenderContext) -> dict[str, Any] | None:
    """The pod's cache volume; None for PerReplica (its claim template supplies it)."""
    if ctx.cache_scope == "Shared":
        return {
            "name": names.CACHE_VOLUME,
            "persistentVolumeClaim": {"claimName": names.model_cache(ctx.owner.name)},
        }
    if ctx.cache_scope == "Ephemeral":
        # Bounded by size: a fetch that outgrows it evicts the pod instead of filling the node.
        return {"name": names.CACHE_VOLUME, "emptyDir": {"sizeLimit": str(spec.model.cache.size)}}
    return None
