"""Which cache scope a service runs under, and the combinations that cannot work. Pure.

Why the operator decides an unset scope instead of the CRD defaulting it: a schema default is
also applied to objects stored before the field existed, so a service whose replicas share the
claim NAME-model would silently move to per-replica claims (every replica downloading again, the
old cache orphaned). Unset therefore means PerReplica for a new service and Shared for one whose
claim NAME-model exists already; an explicit value always wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from emotivoice_operator.crd.spec import CacheScope, EmotiVoiceServiceSpec, SpecError
from emotivoice_operator.render import names

DEFAULT_SCOPE: CacheScope = "PerReplica"


@dataclass(frozen=True)
class ScopeDecision:
    scope: CacheScope
    # Why this scope, in words status.cache.reason shows.
    reason: str
    # Replicas beyond the first may not reach the cache (a Shared ReadWriteOnce claim across
    # nodes); None when every replica the spec allows can.
    warning: str | None = None


def decide_scope(
    spec: EmotiVoiceServiceSpec, instance: str, shared_claim_exists: bool
) -> ScopeDecision:
    """The scope in force; raises ``SpecError`` for a combination no cluster can run.

    ``shared_claim_exists``: the claim NAME-model exists and is ours (made by an operator
    before scopes existed, or kept by retainOnDelete).
    """
    cache = spec.model.cache
    claim = names.model_cache(instance)
    if cache.scope is not None:
        decision = ScopeDecision(cache.scope, f"spec.model.cache.scope is {cache.scope}")
    elif shared_claim_exists:
        decision = ScopeDecision(
            "Shared",
            f"spec.model.cache.scope is unset and the claim {claim} exists (made before cache "
            f"scopes, or kept by retainOnDelete): kept Shared so its cache is reused; set scope "
            f"PerReplica to give each replica its own claim (each downloads once)",
        )
    else:
        decision = ScopeDecision(DEFAULT_SCOPE, "spec.model.cache.scope is unset: the default")
    most = spec.replicas.max
    if decision.scope == "Shared" and cache.access_mode == "ReadWriteOncePod" and most > 1:
        # The schema refuses this for an explicit Shared; an unset scope kept Shared lands here.
        raise SpecError(
            "model.cache.accessMode",
            f"ReadWriteOncePod lets one pod in all use the shared claim {claim}, but "
            f"replicas.max is {most}: set scope PerReplica, accessMode ReadWriteMany, or "
            f"replicas.max 1",
        )
    if decision.scope == "Shared" and cache.access_mode == "ReadWriteOnce" and most > 1:
        warning = (
            f"scope Shared on a ReadWriteOnce claim {claim}: replicas on other nodes than the "
            f"one the volume is attached to cannot start (Multi-Attach, or Pending on a volume "
            f"pinned to one node) once more than one of replicas.max {most} runs; set scope "
            f"PerReplica, or accessMode ReadWriteMany on RWX storage"
        )
        decision = ScopeDecision(decision.scope, decision.reason, warning)
    return decision
