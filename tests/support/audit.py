"""What a long run leaves behind, judged at its end: leaked objects (children whose service is
gone, claims no service mounts, pre-warm Jobs still running long after their lead), and every
cache claim's files re-verified against the store's checksums (the soak's corruption count).

Why here: the soak (bench/soak.py) and the fault tests ask the same questions of a namespace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.cluster import Cluster
from tests.support.faults import CHILD_KINDS
from tests.support.services import PV_NAMESPACE_LABEL

# A pre-warm Job runs within its window's lead; one still active this long after it was created
# is left over (the soak's leads are a minute).
JOB_STALE_AFTER = timedelta(minutes=5)


@dataclass
class Leaks:
    orphaned_children: list[str] = field(default_factory=list)
    stale_claims: list[str] = field(default_factory=list)
    leftover_jobs: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.orphaned_children) + len(self.stale_claims) + len(self.leftover_jobs)


def _created(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


def leaks(cluster: Cluster, namespace: str, now: datetime | None = None) -> Leaks:
    now = now or datetime.now(UTC)
    services = cluster.get_json("evs", "-n", namespace)["items"]
    uids = {s["metadata"]["uid"] for s in services}
    out = Leaks()
    labelled = cluster.get_json(CHILD_KINDS, "-n", namespace, "-l", "app.kubernetes.io/instance")
    for item in labelled["items"]:
        if item["metadata"].get("deletionTimestamp"):
            continue
        owners = {o["uid"] for o in item["metadata"].get("ownerReferences") or []}
        name = f"{item['kind']}/{item['metadata']['name']}"
        # A claim may outlive its service on purpose (retainOnDelete): then it has no owner and
        # its service is gone, which the services here never ask for.
        if owners and not owners & uids:
            out.orphaned_children.append(name)
        if item["kind"] == "PersistentVolumeClaim" and not owners:
            out.stale_claims.append(name)
    pods = cluster.get_json("pods", "-n", namespace)["items"]
    mounted = {
        v["persistentVolumeClaim"]["claimName"]
        for p in pods
        for v in p["spec"].get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    for claim in cluster.get_json("pvc", "-n", namespace)["items"]:
        name = claim["metadata"]["name"]
        owners = claim["metadata"].get("ownerReferences") or []
        if (
            not owners
            and name not in mounted
            and f"PersistentVolumeClaim/{name}" not in (out.stale_claims)
        ):
            out.stale_claims.append(f"PersistentVolumeClaim/{name}")
    for job in cluster.get_json("jobs", "-n", namespace)["items"]:
        status = job.get("status") or {}
        if status.get("active") and now - _created(job) > JOB_STALE_AFTER:
            out.leftover_jobs.append(f"Job/{job['metadata']['name']}")
    return out


@dataclass(frozen=True)
class CacheCheck:
    claims: int  # claims whose model directory was found and checked
    files: int
    corrupt: list[str]  # claim:path of every file whose sha256 differs or is missing


def _model_dir(root: Path, first: str) -> Path | None:
    """The directory under a claim's root that holds the model (where ``first`` lies)."""
    for candidate in root.rglob(Path(first).name):
        base = candidate
        for _ in Path(first).parts:
            base = base.parent
        if (base / first).is_file():
            return base
    return None


def reverify_caches(cluster: Cluster, namespace: str, sums: dict[str, str]) -> CacheCheck:
    """Every claim's volume of ``namespace`` (the hostPath PersistentVolumes made for it) checked
    file by file against the store's sha256 sums. A claim without a complete model (never
    filled, or a download interrupted and not yet resumed) is reported apart only when a file
    of it is present but wrong: the fetch step refuses to serve an incomplete cache."""
    volumes = cluster.get_json("pv", "-l", f"{PV_NAMESPACE_LABEL}={namespace}")["items"]
    first = sorted(sums)[0]
    claims = files = 0
    corrupt: list[str] = []
    for volume in volumes:
        root = Path(volume["spec"]["hostPath"]["path"])
        base = _model_dir(root, first) if root.is_dir() else None
        if base is None:
            continue
        claims += 1
        for rel, digest in sums.items():
            path = base / rel
            if not path.is_file():
                continue  # the fetch step finishes or refuses an incomplete cache
            files += 1
            if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                corrupt.append(f"{volume['metadata']['name']}:{rel}")
    return CacheCheck(claims, files, corrupt)
