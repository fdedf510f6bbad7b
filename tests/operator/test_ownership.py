"""Which live objects the operator may write or delete (issue 16: never adopt, never prune
what is not ours). Pure: the live objects are dicts as the API returns them."""

from __future__ import annotations

from typing import Any

from emotivoice_operator.reconcile.ownership import conflict_message, controlled_by, is_ours
from emotivoice_operator.render import Owner, names

OWNER = Owner(name="tts", namespace="voice", uid="5b0c1d2e-0000-4000-8000-000000000001")
OUR_LABELS = {names.LABEL_INSTANCE: "tts", names.LABEL_MANAGED_BY: names.MANAGER}


def _live(kind: str, refs: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "tts", "namespace": "voice", **meta}
    if refs is not None:
        metadata["ownerReferences"] = refs
    return {"kind": kind, "metadata": metadata}


def test_a_users_object_of_the_same_name_is_not_ours() -> None:
    legacy = _live("Service", labels={"app": "legacy"})
    assert not is_ours(legacy, OWNER.uid, OWNER.name)


def test_labels_alone_do_not_make_an_object_ours() -> None:
    copied = _live("CronJob", labels=OUR_LABELS)
    assert not controlled_by(copied, OWNER.uid)
    assert not is_ours(copied, OWNER.uid, OWNER.name)


def test_an_owner_reference_to_another_resource_is_not_ours() -> None:
    other = _live("Service", [{**OWNER.reference(), "uid": "another-uid"}], labels=OUR_LABELS)
    assert not is_ours(other, OWNER.uid, OWNER.name)


def test_our_owner_reference_makes_it_ours() -> None:
    assert is_ours(_live("Deployment", [OWNER.reference()]), OWNER.uid, OWNER.name)


def test_a_retained_cache_is_ours_only_if_our_field_manager_applied_it() -> None:
    ours = [{"manager": names.FIELD_MANAGER, "operation": "Apply"}]
    retained = _live("PersistentVolumeClaim", labels=OUR_LABELS, managedFields=ours)
    assert is_ours(retained, OWNER.uid, OWNER.name)
    by_kubectl = [{"manager": "kubectl-client-side-apply", "operation": "Update"}]
    users = _live("PersistentVolumeClaim", labels=OUR_LABELS, managedFields=by_kubectl)
    assert not is_ours(users, OWNER.uid, OWNER.name)
    # Ours for another resource name, or another kind: not this resource's cache.
    assert not is_ours(retained, OWNER.uid, "other")
    assert not is_ours({**retained, "kind": "Service"}, OWNER.uid, OWNER.name)


def test_the_conflict_names_the_object_and_the_fix() -> None:
    message = conflict_message([("ServiceAccount", "tts-warm")], "tts")
    assert message.startswith("ServiceAccount tts-warm already exists and is not managed")
    assert "rename or delete it" in message
    both = conflict_message([("Service", "tts"), ("ServiceAccount", "tts-warm")], "tts")
    assert both.startswith("Service tts, ServiceAccount tts-warm already exist and are not")
