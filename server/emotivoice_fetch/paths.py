"""Names of the fetch step's own files inside the model directory, and relative-path safety.

One place for these names: the fetcher writes them, `marker.verify_complete` (called by the
server) reads them, and the tests look for them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from emotivoice_fetch.errors import ExitCode, FetchError

RESERVED_PREFIX = ".emotivoice-"
MARKER_NAME = ".emotivoice-complete.json"
LOCK_NAME = ".emotivoice-lock"
STAGING_NAME = ".emotivoice-partial"  # downloads in progress, journals, previous marker


def marker_path(dest: Path) -> Path:
    return dest / MARKER_NAME


def lock_path(dest: Path) -> Path:
    return dest / LOCK_NAME


def staging_dir(dest: Path) -> Path:
    return dest / STAGING_NAME


def check_relpath(relpath: str, where: str) -> str:
    """Accept a model file's path relative to the model directory, or fail naming `where`.

    Object keys and manifest lines come from outside; a key like `../../etc/x` must never make
    us write outside the model directory, and our own bookkeeping names are off limits.
    """
    parts = relpath.split("/")
    bad = (
        not relpath
        or relpath.startswith("/")
        or "\\" in relpath
        or "\x00" in relpath
        or any(p in ("", ".", "..") for p in parts)
    )
    if bad:
        raise FetchError(
            ExitCode.USAGE,
            f"{where}: {relpath!r} is not a safe relative path (no leading '/', no '.', '..' "
            "or empty components)",
        )
    if parts[0].startswith(RESERVED_PREFIX):
        raise FetchError(
            ExitCode.USAGE,
            f"{where}: {relpath!r} uses the reserved name prefix {RESERVED_PREFIX!r}",
        )
    return str(PurePosixPath(relpath))
