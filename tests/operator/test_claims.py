"""The clean-up rule for per-replica claims (reconcile/claims.py)."""

from __future__ import annotations

from typing import Any

from emotivoice_operator.reconcile.claims import condemned, replica_claims

LABELS = {
    "app.kubernetes.io/instance": "tts",
    "app.kubernetes.io/managed-by": "emotivoice-operator",
}


def _pvc(name: str, labels: dict[str, str] = LABELS, owners: list[dict[str, Any]] | None = None):
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "labels": dict(labels)}
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"metadata": meta}


def test_only_this_services_replica_claims_count() -> None:
    pvcs = [
        _pvc("model-cache-tts-2"),
        _pvc("model-cache-tts-0", owners=[{"kind": "StatefulSet", "name": "tts"}]),
        _pvc("tts-model"),  # the Shared claim: never a replica's
        _pvc("model-cache-tts2-1"),  # another service's
        _pvc("model-cache-tts-1", labels={"app.kubernetes.io/instance": "tts"}),  # not ours
        _pvc("model-cache-tts-3", owners=[{"kind": "Backup", "name": "b"}]),  # someone else's
    ]
    assert [(c.name, c.ordinal) for c in replica_claims("tts", pvcs)] == [
        ("model-cache-tts-0", 0),
        ("model-cache-tts-2", 2),
    ]


def test_claims_from_replicas_max_on_are_deleted_once_their_pod_is_gone() -> None:
    claims = replica_claims("tts", [_pvc(f"model-cache-tts-{i}") for i in range(5)])
    # replicas.max 3: ordinals 3 and 4 never come back; pod tts-4 is still terminating.
    gone = condemned(claims, 3, ["tts-0", "tts-4"], "tts")
    assert [c.name for c in gone] == ["model-cache-tts-3"]
    # Another scope: no replica comes back to any of them.
    assert len(condemned(claims, 0, [], "tts")) == 5
    assert condemned(claims, 5, [], "tts") == []
