"""How concurrent test sessions share the local control plane, and when they may stop it.

Why here and not in hack/cluster.sh: the script has one job, to start, stop and report the
control plane; who is using it, and whether the tests may stop it, is the fixtures' business.

The rule: a session registers under its process id (``STATE/sessions/PID``). A cluster that a
session had to start is marked test-owned (``STATE/test-owned``) and stopped when the last
registered session releases it; one a user started (``hack/cluster.sh up``, ``make cluster``)
is never stopped by the tests, and ``up`` on a test-owned cluster removes the mark (the user
wants it kept). A session that died without releasing (its pid is gone) is pruned at the next
release, so it does not keep the cluster up for good.

Each step holds the lock hack/cluster.sh takes around its own ``up`` and ``down`` (the same
file, named the same way), so one session's check-then-start cannot interleave with another's
last release, nor with a user's ``up`` or ``down``. The script's ``up`` and ``down`` run inside
that lock: ``LOCK_HELD_ENV`` tells it the caller holds it, so it does not wait for itself.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Names the lock the caller holds; hack/cluster.sh then skips taking it (and refuses a value
# that is not its own lock's path, rather than run unlocked or wait forever).
LOCK_HELD_ENV = "EVS_CLUSTER_LOCK_HELD"


def lock_path(state: Path) -> Path:
    """hack/cluster.sh's lock for the state directory ``state``: ``echo "$STATE" | sha1sum``,
    so the digest covers the path and a newline."""
    digest = hashlib.sha1(f"{state}\n".encode()).hexdigest()[:12]
    return Path(f"/tmp/evs-cluster-{digest}.lock")


def pid_alive(pid: int) -> bool:
    """Whether a process of that id exists (a recycled id counts: the cluster then stays up
    until that process ends, never down under a live session)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True


@dataclass(frozen=True)
class ControlPlane:
    """What the registry asks of the control plane: hack/cluster.sh's status, up and down in
    the fixtures (tests/support/cluster.py), fakes in the registry's unit tests. ``up`` and
    ``down`` are called with the lock held."""

    healthy: Callable[[], bool]
    up: Callable[[], None]
    down: Callable[[], None]


class Released(enum.Enum):
    """What a release did with the cluster, for the session's last line."""

    STOPPED = "down (the last test session using it ended)"
    GONE = "already down (its state directory is gone)"
    SHARED = "kept up: other test sessions use it"
    USERS = "kept up: it was not started by the tests (hack/cluster.sh down stops it)"


@dataclass(frozen=True)
class SessionRegistry:
    """The test sessions registered with one state directory's cluster."""

    state: Path
    control: ControlPlane
    is_alive: Callable[[int], bool] = pid_alive

    @property
    def sessions(self) -> Path:
        return self.state / "sessions"

    @property
    def test_owned(self) -> Path:
        return self.state / "test-owned"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """hack/cluster.sh's lock on this state directory, held for the block."""
        fd = os.open(lock_path(self.state), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def acquire(self, pid: int) -> bool:
        """Registers session ``pid``, starting the cluster first when it is not healthy; True
        when this call started it. A failed start registers nothing."""
        with self.locked():
            started = not self.control.healthy()
            if started:
                self.control.up()
                self.test_owned.touch()
            self.sessions.mkdir(parents=True, exist_ok=True)
            (self.sessions / str(pid)).touch()
        return started

    def release(self, pid: int) -> Released:
        """Unregisters session ``pid`` and stops the cluster if the tests started it and no
        live session is left."""
        with self.locked():
            if not self.state.is_dir():
                return Released.GONE
            (self.sessions / str(pid)).unlink(missing_ok=True)
            left = self._live_sessions()
            if not self.test_owned.exists():
                return Released.USERS
            if left:
                return Released.SHARED
            self.control.down()
            return Released.STOPPED

    def _live_sessions(self) -> list[int]:
        """The registered sessions whose process still runs; the files of the others go."""
        if not self.sessions.is_dir():
            return []
        live = []
        for entry in sorted(self.sessions.iterdir()):
            pid = int(entry.name) if entry.name.isdigit() else 0
            if self.is_alive(pid):
                live.append(pid)
            else:
                entry.unlink(missing_ok=True)
        return live
