"""The optional post-processing step (`--after-verify MODULE:FUNCTION`) and its bookkeeping.

The hook runs after every model file is verified and before the marker is written, with
`(dest: Path, files: dict[relpath, sha256])`. It may write derived artifacts (an fp16 copy keyed
by the source checksum, say) anywhere in the model directory outside our reserved names. Its
outputs are found by comparing the directory before and after the call, plus any relative paths
the hook returns (so that a hook may declare an artifact it found already up to date). They are
recorded in the marker like model files, so the server can trust them as cheaply. If the hook
fails, the files it created or changed are removed and no marker is written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.marker import FileRecord, record_for
from emotivoice_fetch.paths import RESERVED_PREFIX, check_relpath

Hook = Callable[[Path, dict[str, str]], Iterable[str] | None]
Snapshot = dict[str, tuple[int, int, int]]  # relpath -> (size, mtime_ns, inode)


def _parse(spec: str) -> tuple[str, str]:
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise FetchError(ExitCode.USAGE, f"--after-verify {spec!r} must be MODULE:FUNCTION")
    return module_name, func_name


def check_hook(spec: str) -> None:
    """Fail early on a hook that cannot exist, without importing its module (only its
    packages): a warm start must not pay for importing torch to run nothing."""
    module_name, _ = _parse(spec)
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise FetchError(
            ExitCode.USAGE, f"--after-verify {spec!r}: cannot import {module_name!r} ({exc})"
        ) from None
    if found is None:
        raise FetchError(
            ExitCode.USAGE, f"--after-verify {spec!r}: no module named {module_name!r}"
        )


def hook_space(hook: Hook | None, dest: Path, sizes: Mapping[str, int]) -> int:
    """Bytes the hook says it will write for a model of these files (relpath -> size), for the
    free-space check; 0 for a hook that does not say (a ``space_needed`` attribute)."""
    estimate = getattr(hook, "space_needed", None)
    return int(estimate(dest, dict(sizes))) if callable(estimate) else 0


def load_hook(spec: str) -> Hook:
    """Import `module:function`; fail before any download if it does not resolve."""
    module_name, func_name = _parse(spec)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FetchError(
            ExitCode.USAGE, f"--after-verify {spec!r}: cannot import {module_name!r} ({exc})"
        ) from None
    func: Any = getattr(module, func_name, None)
    if not callable(func):
        raise FetchError(
            ExitCode.USAGE, f"--after-verify {spec!r}: {module_name} has no function {func_name!r}"
        )
    return func


def snapshot(dest: Path) -> Snapshot:
    """Every regular file under `dest` except our own bookkeeping, with its identity."""
    out: Snapshot = {}
    for root, dirs, files in os.walk(dest):
        if root == str(dest):
            dirs[:] = [d for d in dirs if not d.startswith(RESERVED_PREFIX)]
            files = [f for f in files if not f.startswith(RESERVED_PREFIX)]
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if os.path.isfile(path) and not os.path.islink(path):
                    out[os.path.relpath(path, dest)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def run_hook(spec: str, hook: Hook, dest: Path, files: Mapping[str, str]) -> dict[str, FileRecord]:
    """Run the hook and return records of its artifacts; clean up after it if it fails."""
    before = snapshot(dest)
    try:
        returned = hook(dest, dict(files))
        declared = [
            check_relpath(str(rel), f"--after-verify {spec} result") for rel in returned or ()
        ]
    except Exception as exc:
        _remove_new(dest, before, snapshot(dest), files)
        if _out_of_space(exc):
            raise FetchError(
                ExitCode.DISK_FULL,
                f"disk full while running --after-verify {spec}: the model cache volume has no "
                "space left for its outputs (removed); enlarge model.cache.size or free space, "
                "then restart the pod (the verified download is kept)",
            ) from None
        raise FetchError(
            ExitCode.HOOK_FAILED,
            f"--after-verify {spec} failed ({type(exc).__name__}: {exc}); its outputs were "
            "removed and the model was not marked complete",
        ) from None
    after = snapshot(dest)
    touched = {rel for rel, ident in after.items() if before.get(rel) != ident}
    spoiled = sorted(touched & set(files))
    if spoiled:
        _remove_new(dest, before, after, files)
        raise FetchError(
            ExitCode.HOOK_FAILED,
            f"--after-verify {spec} modified model file {spoiled[0]!r}; a hook must write new "
            "files next to the originals",
        )
    missing = [rel for rel in declared if rel not in after]
    if missing:
        _remove_new(dest, before, after, files)
        raise FetchError(
            ExitCode.HOOK_FAILED,
            f"--after-verify {spec} returned {missing[0]!r}, which is not a file",
        )
    artifacts = (touched | set(declared)) - set(files)
    return {rel: record_for(dest / rel, sha256_file(dest / rel)) for rel in sorted(artifacts)}


def _out_of_space(exc: BaseException) -> bool:
    """Whether a hook failed for want of space: an OSError ENOSPC/EDQUOT anywhere in the chain,
    or a library that turned it into its own type and kept only the text (safetensors'
    SafetensorError says "No space left on device")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if os.strerror(errno.ENOSPC) in str(seen) or os.strerror(errno.EDQUOT) in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _remove_new(dest: Path, before: Snapshot, after: Snapshot, files: Mapping[str, str]) -> None:
    for rel, ident in after.items():
        if rel not in files and before.get(rel) != ident:
            with contextlib.suppress(FileNotFoundError):
                (dest / rel).unlink()
