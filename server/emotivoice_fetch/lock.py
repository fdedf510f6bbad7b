"""A download lock on a shared volume that survives the death of its holder.

Several pods sharing one PVC start together; one downloads, the others wait and then verify. The
lock is a lease file created with O_EXCL (atomic on local file systems, NFSv3+ and CephFS) whose
holder refreshes its mtime every `timeout / 5` seconds. A lock whose mtime has not moved for
`timeout` seconds belongs to a crashed pod and is taken over. Kernel locks (flock/fcntl) are not
used: several RWX volume types do not carry them between nodes, and a crashed node's lock would
hang on for the NFS lease time anyway.

Ages are measured on the file server's clock, not the local one: the waiter touches a probe file
and compares mtimes, so clock skew between nodes cannot make a live lock look stale.

Takeover is a rename of the lock file to a private name followed by a check that what was
renamed is still the stale lease that was judged (same owner token and mtime). If the holder
refreshed it in between, the lease is put back with link() (which never overwrites). A holder
checks before each commit that the lock file still carries its token, so even the rare loser of
that race stops before writing anything where the server would read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.paths import lock_path


@dataclass(frozen=True)
class LeaseInfo:
    """What a lock file says about its holder, and when it last proved to be alive."""

    token: str
    owner: str
    mtime_ns: int


def _read_lease(path: Path) -> LeaseInfo | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        doc = json.loads(raw)
        return LeaseInfo(str(doc["token"]), str(doc.get("owner", "?")), st.st_mtime_ns)
    except (ValueError, KeyError, TypeError):
        # Created but not yet written (the holder is between open and write), or garbage left
        # by a crash at that instant: the mtime still ages it out.
        return LeaseInfo("", "unknown", st.st_mtime_ns)


class LeaseLock:
    """The lock on one model directory; use `acquire` and `release`, or `held()`."""

    def __init__(self, dest: Path, timeout_s: float, log: Callable[[str], None]) -> None:
        if timeout_s <= 0:
            raise FetchError(ExitCode.USAGE, "--lock-timeout must be a positive number of seconds")
        self.path = lock_path(dest)
        self.dest = dest
        self.timeout_s = timeout_s
        self.log = log
        self.token = uuid.uuid4().hex
        self.owner = f"{socket.gethostname()} pid {os.getpid()}"
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._beat: threading.Thread | None = None

    # -- acquiring --------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lock if it is free or stale; never blocks."""
        if self._create():
            return True
        lease = _read_lease(self.path)
        if lease is None:
            return self._create()  # released between our two looks
        age_s = (self._fs_now_ns() - lease.mtime_ns) / 1e9
        if age_s <= self.timeout_s:
            return False
        if self._break(lease):
            self.log(
                f"recovered a stale download lock held by {lease.owner} "
                f"(no heartbeat for {age_s:.0f} s, limit {self.timeout_s:.0f} s)"
            )
            return self._create()
        return False

    def holder(self) -> str:
        lease = _read_lease(self.path)
        return lease.owner if lease else "nobody"

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            doc = {"token": self.token, "owner": self.owner, "since": time.time()}
            os.write(fd, json.dumps(doc).encode())
        finally:
            os.close(fd)
        self._start_heartbeat()
        return True

    def _break(self, stale: LeaseInfo) -> bool:
        """Move a stale lease aside; put it back if it turns out to be alive after all."""
        aside = self.path.with_name(f"{self.path.name}.breaking-{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False  # someone else broke or released it first
        taken = _read_lease(aside)
        if taken is not None and taken == stale:
            os.unlink(aside)
            return True
        with contextlib.suppress(FileExistsError, FileNotFoundError):
            os.link(aside, self.path)  # never overwrites a lock someone just created
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
        return False

    def _fs_now_ns(self) -> int:
        """The file server's idea of now: the mtime of a file we touch."""
        probe = self.dest / f"{self.path.name}.probe-{self.token}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, b"x")
                return os.fstat(fd).st_mtime_ns
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError:
            return time.time_ns()

    # -- holding ----------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._lost.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="lock-heartbeat", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        period = max(0.05, self.timeout_s / 5)
        while not self._stop.wait(period):
            if not self._still_mine():
                self._lost.set()
                return
            try:
                os.utime(self.path)
            except OSError:
                self._lost.set()
                return

    def _still_mine(self) -> bool:
        lease = _read_lease(self.path)
        return lease is not None and lease.token == self.token

    def check_held(self) -> None:
        """Raise LOCK_LOST unless we still hold the lock (called before each commit)."""
        if self._lost.is_set() or not self._still_mine():
            self._lost.set()
            raise FetchError(
                ExitCode.LOCK_LOST,
                f"lost the download lock on {self.dest} to {self.holder()} (this pod stalled "
                f"for more than --lock-timeout={self.timeout_s:g} s?); nothing was committed",
            )

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self._still_mine():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
