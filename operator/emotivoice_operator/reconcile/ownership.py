"""Is a live object ours? Pure; decides whether the operator may write or delete it.

A name is not proof: a user's Service ``tts`` or ServiceAccount ``tts-warm`` may exist before the
EmotiVoiceService ``tts`` does, and labels are only text anybody may copy. What proves that an
object is a child of one EmotiVoiceService is the controller owner reference that the operator
put there, naming that resource's uid. An object without it is never adopted (a forced apply
would rewrite it, and garbage collection would then delete it with the resource) and never
pruned.

One exception, for the cache the user asked to keep: a retained PersistentVolumeClaim carries no
owner reference by design (so that garbage collection leaves it). It is ours when no controller
owns it, its labels name this resource and the operator's own field manager applied it (the
managedFields entry the API server keeps), which is what lets a re-created resource reuse its
download.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emotivoice_operator.render import names


def _references(live: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    meta = live.get("metadata") or {}
    return list(meta.get("ownerReferences") or meta.get("owner_references") or [])


def controlled_by(live: Mapping[str, Any], uid: str) -> bool:
    """Whether ``live`` carries an owner reference to the resource with ``uid``."""
    return any(ref.get("uid") == uid for ref in _references(live))


def _retained_cache_of(live: Mapping[str, Any], instance: str) -> bool:
    meta = live.get("metadata") or {}
    if live.get("kind") != "PersistentVolumeClaim":
        return False
    if any(ref.get("controller") for ref in _references(live)):
        return False
    labels = meta.get("labels") or {}
    if labels.get(names.LABEL_INSTANCE) != instance:
        return False
    managers = meta.get("managedFields") or meta.get("managed_fields") or []
    return any(
        m.get("manager") == names.FIELD_MANAGER and m.get("operation") == "Apply" for m in managers
    )


def is_ours(live: Mapping[str, Any], uid: str, instance: str) -> bool:
    """Whether the operator may write ``live`` as a child of resource ``instance`` (``uid``)."""
    return controlled_by(live, uid) or _retained_cache_of(live, instance)


def conflict_message(taken: list[tuple[str, str]], instance: str) -> str:
    """What a user reads when children's names (kind, name) are taken by objects not ours."""
    objects = ", ".join(f"{kind} {name}" for kind, name in taken)
    one = len(taken) == 1
    return (
        f"{objects} already exist{'s' if one else ''} and {'is' if one else 'are'} not managed "
        f"by EmotiVoiceService {instance} (no owner reference to it); the operator leaves "
        f"{'it' if one else 'them'} untouched and creates nothing until the "
        f"name{'' if one else 's'} {'is' if one else 'are'} free: rename or delete "
        f"{'it' if one else 'them'}, or give the EmotiVoiceService another name"
    )
