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
# A file name's limit on Linux file systems (NAME_MAX), in bytes.
MAX_COMPONENT_BYTES = 255
# S3's own limit on a key's length; a longer relative path can only come from a store that is
# not S3 (or a hostile listing), and together with the cache's mount point and the staging area's
# suffixes it could exceed the system's path limit (PATH_MAX, 4096) midway through a download.
MAX_RELPATH_BYTES = 1024


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
    longest = max(parts, key=lambda p: len(p.encode()))
    if len(longest.encode()) > MAX_COMPONENT_BYTES:
        raise FetchError(
            ExitCode.USAGE,
            f"{where}: component {longest[:40]!r}... is {len(longest.encode())} bytes long; a "
            f"file name has at most {MAX_COMPONENT_BYTES}: rename the object in the store",
        )
    if len(relpath.encode()) > MAX_RELPATH_BYTES:
        raise FetchError(
            ExitCode.USAGE,
            f"{where}: the path is {len(relpath.encode())} bytes long, more than the "
            f"{MAX_RELPATH_BYTES} an S3 key may have: rename the object in the store",
        )
    if parts[0].startswith(RESERVED_PREFIX):
        raise FetchError(
            ExitCode.USAGE,
            f"{where}: {relpath!r} uses the reserved name prefix {RESERVED_PREFIX!r}",
        )
    return str(PurePosixPath(relpath))
