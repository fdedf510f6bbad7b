"""The fetch step's one-line report to the operator: what this start found in the cache, how
long each phase took, and when the process started and ended (to the millisecond, where the
pod's container states have whole seconds).

It travels as the init container's termination message (the kubelet copies the file named by
`terminationMessagePath`, /dev/termination-log by default, into the pod's status), so the
operator reads it from the pod it already watches: no sidecar, no log scraping, no extra API
call. The kubelet keeps at most 4096 bytes of it, so it stays one short JSON object.

Stdlib only: the operator imports this module (its image carries the package's sources) to read
what the fetch step wrote, so the format has one definition.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The kubelet truncates termination messages to this many bytes.
MAX_BYTES = 4096
# Where a container's termination message is read from unless its spec says otherwise.
TERMINATION_LOG = "/dev/termination-log"
VERSION = 1

# What the start found: "warm" (a complete, verified cache: nothing downloaded), "waited"
# (another pod was filling the same cache; this one waited for it), "downloaded" (this pod
# downloaded at least one object).
ACTIONS = ("warm", "waited", "downloaded")
# The values of `FetchReport.remote`, as its comment describes them.
REMOTE_COMPARED, REMOTE_UNREACHABLE, REMOTE_NOT_NEEDED = REMOTES = (
    "compared",
    "unreachable",
    "not-needed",
)


@dataclass(frozen=True)
class FetchReport:
    action: str
    files: int
    bytes: int
    downloaded_bytes: int
    seconds: float
    # Wall seconds per phase of this run, e.g. {"list": .., "download": .., "verify": ..,
    # "convert": ..}; phases that did not run are absent.
    phases: dict[str, float] = field(default_factory=dict)
    # How the cache was compared with the store: "compared", "unreachable" (the store could
    # not be asked; the verified cache was used as it is), "not-needed" (every file pinned).
    remote: str = "compared"
    # Wall-clock epoch seconds (ms) of the process's start (the kernel's record, so the
    # interpreter's start-up counts) and of the report's writing: the operator's boundaries of
    # the fetch phase, where the pod's container states have whole seconds only. None in a
    # report from a fetch step older than them.
    started_at: float | None = None
    ended_at: float | None = None

    def to_json(self) -> str:
        body = asdict(self) | {"v": VERSION}
        body["seconds"] = round(self.seconds, 3)
        body["phases"] = {k: round(v, 3) for k, v in self.phases.items()}
        for key in ("started_at", "ended_at"):
            if body[key] is None:
                del body[key]
            else:
                body[key] = round(body[key], 3)
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        if len(text.encode()) > MAX_BYTES:
            raise ValueError(f"fetch report is {len(text.encode())} bytes, over {MAX_BYTES}")
        return text

    @property
    def cache_hit(self) -> bool:
        """The start used a cache it did not fill itself."""
        return self.action != "downloaded"


def parse(text: str | None) -> FetchReport | None:
    """The report in a termination message, or None when there is none or it is not ours (an
    older fetch step, a failure whose message is the log's tail)."""
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != VERSION or body.get("action") not in ACTIONS:
        return None
    try:
        return FetchReport(
            action=body["action"],
            files=int(body.get("files", 0)),
            bytes=int(body.get("bytes", 0)),
            downloaded_bytes=int(body.get("downloaded_bytes", 0)),
            seconds=float(body.get("seconds", 0.0)),
            phases={str(k): float(v) for k, v in (body.get("phases") or {}).items()},
            remote=str(body.get("remote", "compared")),
            started_at=_epoch(body.get("started_at")),
            ended_at=_epoch(body.get("ended_at")),
        )
    except (TypeError, ValueError):
        return None


def _epoch(value: object) -> float | None:
    """An instant of the report, epoch seconds; None when absent (an older fetch step) or not
    an instant: the rest of the report still stands."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value > 0 else None


def write(path: Path, report: FetchReport) -> None:
    """Write the report where the kubelet reads it. Outside a pod (no such file and no directory
    to create it in) a missing path is not an error of the fetch: it is skipped."""
    text = report.to_json()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "w") as out:
        out.write(text)
