"""The completion marker: the only proof that a model directory holds a complete, verified model.

The fetcher writes `<dest>/.emotivoice-complete.json` last, atomically, after every file was
verified against its sha256. For each file it records the size, the sha256 and the file's
identity (inode and modification time in nanoseconds). `verify_complete` re-checks only the
identity with `stat`, so a warm start costs milliseconds instead of re-reading gigabytes, yet a
file that was replaced, truncated or rewritten since is still caught (its inode, size or mtime
changed). The server calls `verify_complete` before loading.

The marker also records whether the files were fsynced and the kernel boot id of the run that
wrote them (see durability.py): a marker that says `"synced": false` vouches for its files only
during that boot, since a node crash may have lost bytes that never reached the disk.
`verify_complete` refuses it after a reboot; `emotivoice-fetch` then re-hashes the files.

The device number is deliberately not recorded: a shared volume (NFS, CephFS) mounted on two
nodes gets a different device number on each, while inode and mtime come from the file server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emotivoice_fetch import confined
from emotivoice_fetch.durability import current_boot_id, fsync_dir, trusted_now
from emotivoice_fetch.errors import FetchError
from emotivoice_fetch.paths import check_relpath, marker_path

MARKER_FORMAT = 2  # 2 added "synced" and "boot_id"; a format-1 marker was always fsynced
READABLE_FORMATS = (1, 2)


class IncompleteModel(Exception):
    """The directory is not a complete verified model; the message says why."""


class UnsyncedFromOtherBoot(IncompleteModel):
    """The model was verified without fsync during another boot: re-hash before trusting it."""

    def __init__(self, message: str, model: CompleteModel) -> None:
        super().__init__(message)
        self.model = model  # as the marker records it: the sha256 to re-hash against


@dataclass(frozen=True)
class FileRecord:
    """What was verified about one file, and how to recognise that it is unchanged."""

    size: int
    sha256: str
    mtime_ns: int
    inode: int
    etag: str | None = None  # the object's ETag at download time (model files only)

    def matches(self, st: os.stat_result) -> bool:
        return (
            st.st_size == self.size and st.st_mtime_ns == self.mtime_ns and st.st_ino == self.inode
        )


@dataclass(frozen=True)
class CompleteModel:
    """A verified model directory as the marker describes it."""

    dest: Path
    source: str
    files: Mapping[str, FileRecord]  # model files from the store, by relative path
    artifacts: Mapping[str, FileRecord] = field(default_factory=dict)  # written by the hook
    after_verify: str | None = None
    synced: bool = True  # every file was fsynced before the marker was written
    boot_id: str | None = None  # the boot during which it was verified

    @property
    def sha256(self) -> dict[str, str]:
        return {rel: rec.sha256 for rel, rec in self.files.items()}

    def path(self, relpath: str) -> Path:
        return self.dest / relpath


def record_for(path: Path, sha256: str, etag: str | None = None) -> FileRecord:
    """Describe a file that was just verified, as it is on disk now."""
    st = path.stat()
    return FileRecord(st.st_size, sha256, st.st_mtime_ns, st.st_ino, etag)


def _records(raw: Any, what: str) -> dict[str, FileRecord]:
    if not isinstance(raw, dict):
        raise IncompleteModel(f"marker field {what!r} is not an object")
    out: dict[str, FileRecord] = {}
    for relpath, rec in raw.items():
        try:
            check_relpath(relpath, f"marker {what}")
            out[relpath] = FileRecord(
                size=int(rec["size"]),
                sha256=str(rec["sha256"]),
                mtime_ns=int(rec["mtime_ns"]),
                inode=int(rec["inode"]),
                etag=rec.get("etag"),
            )
        except (KeyError, TypeError, ValueError, FetchError) as exc:
            raise IncompleteModel(f"marker entry {relpath!r} is malformed: {exc}") from None
    return out


def read_marker(path: Path, dest: Path) -> CompleteModel:
    """Parse a marker file without checking the files it lists."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            raw = json.loads(f.read())
    except FileNotFoundError:
        raise IncompleteModel(f"no completion marker {path.name} in {dest}") from None
    except (OSError, ValueError) as exc:
        raise IncompleteModel(f"completion marker {path} is unreadable: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") not in READABLE_FORMATS:
        raise IncompleteModel(f"completion marker {path} has an unknown format")
    boot_id = raw.get("boot_id")
    return CompleteModel(
        dest=dest,
        source=str(raw.get("source", "")),
        files=_records(raw.get("files"), "files"),
        artifacts=_records(raw.get("artifacts", {}), "artifacts"),
        after_verify=raw.get("after_verify"),
        synced=raw.get("synced", True) is not False,
        boot_id=boot_id if isinstance(boot_id, str) else None,
    )


def check_boot(model: CompleteModel, now: str | None) -> None:
    """Refuse a marker whose files may have lost unsynced bytes in a reboot since."""
    if trusted_now(model.synced, model.boot_id, now):
        return
    raise UnsyncedFromOtherBoot(
        f"{model.dest}: the model was verified without fsync during another boot "
        f"(boot id {model.boot_id}, now {now or 'unknown'}), so a node crash or reboot may have "
        "lost bytes that never reached the disk; run emotivoice-fetch (the init container) to "
        "re-verify it",
        model,
    )


def changed_files(model: CompleteModel) -> list[str]:
    """Relative paths (files and artifacts) whose identity no longer matches the marker."""
    changed = []
    for relpath, rec in (*model.files.items(), *model.artifacts.items()):
        try:
            st = confined.lstat(model.dest, relpath)  # a link on the way is not the file
        except OSError:
            changed.append(relpath)
            continue
        if not rec.matches(st):
            changed.append(relpath)
    return changed


def verify_complete(dest: Path) -> CompleteModel:
    """Return the verified model in `dest`, or raise `IncompleteModel` saying what is wrong.

    Cheap by design: reads the marker and stats each file; never re-hashes. A marker written
    without fsync during another boot is refused (`UnsyncedFromOtherBoot`).
    """
    dest = Path(dest)
    model = read_marker(marker_path(dest), dest)
    if not model.files:
        raise IncompleteModel(f"completion marker in {dest} lists no files")
    check_boot(model, current_boot_id())
    changed = changed_files(model)
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        raise IncompleteModel(f"{dest}: {shown} changed or missing since verification")
    return model


def marker_document(model: CompleteModel) -> dict[str, Any]:
    """The JSON document for a marker (pure; sorted so that equal models give equal bytes)."""
    return {
        "format": MARKER_FORMAT,
        "source": model.source,
        "after_verify": model.after_verify,
        "synced": model.synced,
        "boot_id": model.boot_id,
        "files": {rel: asdict(model.files[rel]) for rel in sorted(model.files)},
        "artifacts": {rel: asdict(model.artifacts[rel]) for rel in sorted(model.artifacts)},
    }


def write_marker(model: CompleteModel) -> Path:
    """Write the marker atomically (temp file, rename).

    A synced marker is made durable (fsync of the file, then of the directory). An unsynced one
    is not: fsyncing even this small file makes ext4 commit its journal, which in ordered mode
    waits for the model's data, the very wait `boot` mode avoids. Losing it in a crash is safe
    (no marker: re-verify), and if it survives a reboot its boot id makes it untrusted.
    """
    path = marker_path(model.dest)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    data = json.dumps(marker_document(model), indent=1).encode() + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
        if model.synced:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if model.synced:
        fsync_dir(model.dest)
    return path
