"""Which per-replica cache claims belong to replicas that will not come back. Pure.

The rule users read in docs/concepts.md ("Cache scopes"): a PerReplica claim ``model-cache-NAME-K`` is kept
while the spec could still bring replica K back, that is while K < the most replicas the HPA,
every window and every warm request can ask for (``replicas.max``); under the other scopes no
replica ever comes back to one. A claim is deleted only when no pod of its ordinal exists (a
pod still terminating keeps it), and only a claim that carries this service's labels and the
name the StatefulSet controller gives it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emotivoice_operator.render import names

# Kinds that put owner references on our claims: the StatefulSet controller (its retention
# policy). A claim owned by anything else is left alone.
_CLAIM_OWNERS = ("StatefulSet", "Pod")


@dataclass(frozen=True)
class ReplicaClaim:
    name: str
    ordinal: int
    uid: str


def replica_claims(instance: str, pvcs: Iterable[Mapping[str, Any]]) -> list[ReplicaClaim]:
    """This service's PerReplica claims among ``pvcs``, by ordinal."""
    out = []
    for pvc in pvcs:
        meta = pvc.get("metadata") or {}
        labels = meta.get("labels") or {}
        ordinal = names.replica_cache_ordinal(instance, meta.get("name", ""))
        if (
            ordinal is None
            or labels.get(names.LABEL_INSTANCE) != instance
            or labels.get(names.LABEL_MANAGED_BY) != names.MANAGER
            or any(
                ref.get("kind") not in _CLAIM_OWNERS for ref in meta.get("ownerReferences") or []
            )
        ):
            continue
        out.append(ReplicaClaim(meta["name"], ordinal, meta.get("uid", "")))
    return sorted(out, key=lambda c: c.ordinal)


def condemned(
    claims: Iterable[ReplicaClaim], keep_below: int, pod_names: Iterable[str], instance: str
) -> list[ReplicaClaim]:
    """Claims of ordinals >= ``keep_below`` whose pod does not exist."""
    pods = set(pod_names)
    return [
        c
        for c in claims
        if c.ordinal >= keep_below and f"{names.server(instance)}-{c.ordinal}" not in pods
    ]
