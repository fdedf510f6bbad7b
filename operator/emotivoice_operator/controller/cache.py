"""The informer cache: what the operator's watches show of one EmotiVoiceService (the resource,
its children and its server pods, as kopf indexes keep them; handlers.py feeds them), and how to
tell which of two copies of an object is newer.

Why: a reconcile that reads every child and lists every kind from the API server costs about
twenty requests per service per pass; at a thousand services the timer alone kept the API
server busy. The watches already stream every change, so a pass reads this snapshot and goes to
the API only where the snapshot cannot be trusted: a child it does not show (someone else's
object of that name carries none of our labels, so no index holds it), and the objects the
operator wrote a moment ago whose watch event has not come back yet (``newer``; expectations.py
keeps those).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Annotations that repeat the whole object (kubectl apply's copy): not kept in memory.
_HEAVY_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """A watched object as the indexes keep it: managedFields cut to who wrote how (ownership.py
    reads that; the field sets are a third of a typical object's size) and without kubectl's
    copy of the object."""
    out = dict(body)
    meta = dict(body.get("metadata") or {})
    if meta.get("managedFields"):
        meta["managedFields"] = [
            {k: m[k] for k in ("manager", "operation") if k in m} for m in meta["managedFields"]
        ]
    annotations = meta.get("annotations")
    if annotations and any(a in annotations for a in _HEAVY_ANNOTATIONS):
        meta["annotations"] = {k: v for k, v in annotations.items() if k not in _HEAVY_ANNOTATIONS}
    out["metadata"] = meta
    return out


@dataclass(frozen=True)
class Packed:
    """A watched object as an index holds it: compact JSON, deflated.

    Why: as Python dicts, a service's children and pods take ~150 KB (a StatefulSet's pod
    template alone is thousands of small objects); packed, a tenth of it. At a thousand
    services that is the difference between an operator of 350 MB and one well under 300 MB.
    A pass unpacks the ten or so objects of its one service (tens of microseconds each).
    """

    data: bytes

    def unpack(self) -> dict[str, Any]:
        return json.loads(zlib.decompress(self.data))


def pack(body: Mapping[str, Any]) -> Packed:
    text = json.dumps(compact(body), separators=(",", ":"), default=str)
    return Packed(zlib.compress(text.encode(), 1))


def _version(obj: Mapping[str, Any] | None) -> int | None:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


def newer(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newer of two copies of one object (``b`` when the versions cannot be compared).

    resourceVersions are opaque by contract, but every API server backed by etcd hands out its
    revision, an integer that only grows; where either copy is not such an integer, ``b`` (the
    caller's fresher source, e.g. the answer to its own write) wins."""
    if a is None or b is None:
        return b if a is None else a
    va, vb = _version(a), _version(b)
    if va is not None and vb is not None and va > vb:
        return a
    return b


@dataclass(frozen=True)
class Snapshot:
    """One service as the watches show it at the start of a pass."""

    body: dict[str, Any] | None  # None: deleted (or not seen yet)
    # Every watched child carrying the service's instance label, ours or not (is_ours decides).
    children: list[dict[str, Any]] = field(default_factory=list)
    # The server pods (the selector's labels).
    pods: list[dict[str, Any]] = field(default_factory=list)
    # spec.fallback's EmotiVoiceService and its server pods, as the same indexes hold them
    # (None and [] without a fallback, or while it does not exist).
    fallback: dict[str, Any] | None = None
    fallback_pods: list[dict[str, Any]] = field(default_factory=list)
    # The EmotiVoiceCalendars spec.warmPool.calendars names that exist, by name (a name absent
    # here does not exist: its dates count as empty).
    calendars: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The warm path's pods: the image pre-pull DaemonSet's and the capacity placeholders.
    warm_pods: list[dict[str, Any]] = field(default_factory=list)

    def child(self, kind: str, name: str) -> dict[str, Any] | None:
        return next(
            (
                c
                for c in self.children
                if c.get("kind") == kind and c.get("metadata", {}).get("name") == name
            ),
            None,
        )

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [c for c in self.children if c.get("kind") == kind]


def unpacked(values: Iterable[Packed] | None) -> list[dict[str, Any]]:
    """What an index holds for one key, as objects."""
    return [v.unpack() for v in values or ()]


def first(values: Iterable[Packed] | None) -> dict[str, Any] | None:
    """The one value an index holds for a key that a single object feeds (the resource)."""
    packed = next(iter(values or ()), None)
    return packed.unpack() if packed is not None else None
