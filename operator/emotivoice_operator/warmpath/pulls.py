"""The kubelet's ``Pulled`` Events as pull measurements, and the image lead learned from them.

The kubelet posts one ``Pulled`` Event per container image it ensures (pkg/kubelet/images):
``Successfully pulled image "IMG" in 43.2s (43.2s including waiting). Image size: 123 bytes.``
after a pull, ``Container image "IMG" already present on machine`` when it had it. A pull is the
time the pre-pull must cover; an image already present costs nothing (0 s). The image lead of
``prePull.lead: auto`` is their p95 plus a margin, like ``leadTime: auto`` (tuning/lead.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from emotivoice_operator.tuning.lead import LeadDecision, learn_lead
from emotivoice_operator.windows.model import AUTO, LeadBounds, parse_duration

# prePull.lead: auto learns within these (the CRD's description says the same numbers).
IMAGE_LEAD_MIN = timedelta(minutes=1)
IMAGE_LEAD_MAX = timedelta(hours=1)
IMAGE_LEAD_MARGIN = timedelta(minutes=1)
IMAGE_LEAD_MIN_PULLS = 3
# Pulls status keeps (oldest dropped first).
RECENT_PULLS = 20

_PULLED = re.compile(
    r'Successfully pulled image "(?P<image>[^"]+)" in (?P<took>[0-9.]+[a-zµ]+(?:[0-9.]+[a-zµ]+)*)'
    r"(?: \([^)]*\))?\.(?: Image size: (?P<bytes>[0-9]+) bytes\.?)?"
)
_PRESENT = re.compile(r'Container image "(?P<image>[^"]+)" already present on machine')
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_GO_PART = re.compile(r"([0-9.]+)(h|ms|us|µs|ns|m|s)")


@dataclass(frozen=True)
class Pull:
    """One image the kubelet ensured on a node for a pod."""

    pod: str
    node: str
    image: str
    seconds: float
    size_bytes: int | None
    present: bool

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pod": self.pod,
            "node": self.node,
            "image": self.image,
            "seconds": round(self.seconds, 3),
            "present": self.present,
        }
        if self.size_bytes is not None:
            out["bytes"] = self.size_bytes
        return out

    @classmethod
    def from_status(cls, entry: Mapping[str, Any]) -> Pull:
        return cls(
            str(entry.get("pod", "")),
            str(entry.get("node", "")),
            str(entry.get("image", "")),
            float(entry.get("seconds") or 0.0),
            int(entry["bytes"]) if entry.get("bytes") is not None else None,
            bool(entry.get("present")),
        )

    def text(self) -> str:
        if self.present:
            return f"{self.node} already present"
        size = f", {self.size_bytes / 1e6:.1f} MB" if self.size_bytes is not None else ""
        return f"{self.node} pulled in {self.seconds:.1f} s{size}"


def go_duration(text: str) -> float | None:
    """Seconds of a Go ``time.Duration`` string (``1m2.5s``, ``850ms``); None if it is not one."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNIT[u] for n, u in parts)


def parse_pulled(message: str, pod: str, node: str) -> Pull | None:
    """The measurement in one ``Pulled`` Event's message, or None for another message."""
    if m := _PRESENT.search(message):
        return Pull(pod, node, m["image"], 0.0, None, True)
    if (m := _PULLED.search(message)) and (seconds := go_duration(m["took"])) is not None:
        size = int(m["bytes"]) if m["bytes"] else None
        return Pull(pod, node, m["image"], seconds, size, False)
    return None


def image_lead(
    lead: str, initial: timedelta, pulls: Iterable[Pull], in_force: timedelta | None
) -> LeadDecision:
    """The image lead in force: ``lead`` as written, or (``auto``) learned from ``pulls``."""
    if lead != AUTO:
        fixed = parse_duration(lead, "warmPool.prePull.lead")
        return LeadDecision(fixed, "fixed", f"prePull.lead {lead}", 0)
    bounds = LeadBounds(
        initial=initial,
        minimum=IMAGE_LEAD_MIN,
        maximum=IMAGE_LEAD_MAX,
        margin=IMAGE_LEAD_MARGIN,
        min_starts=IMAGE_LEAD_MIN_PULLS,
    )
    return learn_lead(bounds, [p.seconds for p in pulls], in_force, what="image pulls")
