"""The standard app.kubernetes.io labels and the owner reference every child carries."""

from __future__ import annotations

from typing import Any

from emotivoice_operator.render import names
from emotivoice_operator.render.context import Owner


def selector(owner: Owner, component: str) -> dict[str, str]:
    """The immutable subset used in selectors: never add a label here that may change."""
    return {
        names.LABEL_NAME: names.APP_NAME,
        names.LABEL_INSTANCE: owner.name,
        names.LABEL_COMPONENT: component,
    }


def standard(owner: Owner, component: str) -> dict[str, str]:
    return {
        **selector(owner, component),
        names.LABEL_MANAGED_BY: names.MANAGER,
        names.LABEL_PART_OF: names.APP_NAME,
    }


def metadata(
    owner: Owner, name: str, component: str, *, owned: bool = True, **extra: Any
) -> dict[str, Any]:
    """Metadata of a child. ``owned=False`` leaves out the owner reference (a retained PVC)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": standard(owner, component),
    }
    if owned:
        meta["ownerReferences"] = [owner.reference()]
    meta.update(extra)
    return meta
