"""File operations confined to the model directory: no symbolic link inside it is followed.

Paths inside the cache come from object keys, and the cache volume outlives every pod that
mounted it: a directory of the model swapped for a symlink (``dest/sub -> /elsewhere``) must not
make the fetch step write, accept or delete files outside the cache. So every directory below
``dest`` is opened component by component with ``O_NOFOLLOW`` relative to its parent's
descriptor (``openat``), and files are created, renamed, stat'ed and unlinked relative to that
descriptor. A symlink where a directory belongs is refused (``ExitCode.UNSAFE_CACHE``) naming the
path; a symlink where a file belongs is replaced like any stale file (``rename`` replaces the
link itself, never its target).

``dest`` itself is the root of trust (the operator mounts the volume there); it must not be a
symlink either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from emotivoice_fetch.errors import ExitCode, FetchError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SymlinkInCache(FetchError):
    """A symbolic link sits where the cache needs a directory."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            ExitCode.UNSAFE_CACHE,
            f"{path} is a symbolic link (or not a directory) inside the model cache; the fetch "
            "step never follows links out of the cache: remove it and restart the pod",
        )
        self.path = path


def _is_symlink_error(exc: OSError) -> bool:
    return exc.errno in (errno.ELOOP, errno.ENOTDIR)


def check_root(dest: Path) -> None:
    """Refuse a model directory that is itself a symlink."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(dest).st_mode):
            raise SymlinkInCache(dest)


@contextlib.contextmanager
def open_dir(dest: Path, reldir: str, *, create: bool = False) -> Iterator[int]:
    """A descriptor of ``dest/reldir`` reached without following any link (created when asked).

    Raises ``SymlinkInCache`` for a link on the way and ``FileNotFoundError`` for a missing
    directory when not creating.
    """
    fd = os.open(dest, _DIR_FLAGS)
    try:
        walked = dest
        for part in PurePosixPath(reldir).parts if reldir not in ("", ".") else ():
            walked = walked / part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if _is_symlink_error(exc):
                        raise SymlinkInCache(walked) from None
                    raise
            except OSError as exc:
                if _is_symlink_error(exc):
                    raise SymlinkInCache(walked) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _split(relpath: str) -> tuple[str, str]:
    path = PurePosixPath(relpath)
    return str(path.parent), path.name


def lstat(dest: Path, relpath: str) -> os.stat_result:
    """``stat`` of a file in the cache; a link anywhere on the way is ``FileNotFoundError``
    (the file is not in the cache, whatever the link points at)."""
    reldir, name = _split(relpath)
    try:
        with open_dir(dest, reldir) as fd:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except SymlinkInCache:
        raise FileNotFoundError(
            errno.ENOENT, "a symbolic link on the way", str(dest / relpath)
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise FileNotFoundError(errno.ENOENT, "not a regular file", str(dest / relpath))
    return st


def move_in(src: Path, dest: Path, relpath: str) -> None:
    """Rename ``src`` (a staged file) to ``dest/relpath``, creating its directories confined."""
    reldir, name = _split(relpath)
    with open_dir(dest, reldir, create=True) as fd:
        os.replace(src, name, dst_dir_fd=fd)


def unlink(dest: Path, relpath: str) -> bool:
    """Remove ``dest/relpath`` if it is in the cache (never through a link); True if removed."""
    reldir, name = _split(relpath)
    try:
        with open_dir(dest, reldir) as fd:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                return False
            os.unlink(name, dir_fd=fd)
            return True
    except (FileNotFoundError, SymlinkInCache):
        return False


def sanitize_tree(root: Path) -> list[Path]:
    """Remove every symbolic link below ``root`` (the staging area: ours alone, disposable), and
    ``root`` itself if it is one; returns what was removed."""
    removed: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(root).st_mode):
            root.unlink()
            return [root]
    for directory, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            if path.is_symlink():
                path.unlink()
                removed.append(path)
    return removed
