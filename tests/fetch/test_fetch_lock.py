"""The lease lock: exclusive, recovered when its holder died, never stolen while alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.lock import LeaseLock
from emotivoice_fetch.paths import lock_path

REPO = Path(__file__).resolve().parents[2]


def new_lock(dest: Path, timeout_s: float = 30.0) -> tuple[LeaseLock, list[str]]:
    logs: list[str] = []
    return LeaseLock(dest, timeout_s, logs.append), logs


def test_exclusive_until_released(tmp_path: Path) -> None:
    first, _ = new_lock(tmp_path)
    second, _ = new_lock(tmp_path)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert "pid" in second.holder()
    first.release()
    assert not lock_path(tmp_path).exists()
    assert second.try_acquire()
    second.check_held()
    second.release()


def test_stale_lock_of_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    path.write_text(json.dumps({"token": "dead", "owner": "pod-a pid 7"}))
    old = time.time() - 3600
    os.utime(path, (old, old))
    lock, logs = new_lock(tmp_path, timeout_s=5)
    assert lock.try_acquire()
    assert any("recovered a stale download lock held by pod-a pid 7" in line for line in logs)
    lock.check_held()
    lock.release()


def test_live_lock_is_kept_alive_by_its_heartbeat(tmp_path: Path) -> None:
    holder, _ = new_lock(tmp_path, timeout_s=0.5)
    waiter, _ = new_lock(tmp_path, timeout_s=0.5)
    assert holder.try_acquire()
    deadline = time.monotonic() + 1.5  # three timeouts: without heartbeats it would go stale
    while time.monotonic() < deadline:
        assert not waiter.try_acquire()
        time.sleep(0.1)
    holder.check_held()
    holder.release()


# A holder in a process of its own: it takes the lock, says so, and checks it still holds it
# when told to (the moment before a commit); its exit status is check_held's verdict.
HOLDER = """
import sys
from pathlib import Path
from emotivoice_fetch.errors import FetchError
from emotivoice_fetch.lock import LeaseLock

lock = LeaseLock(Path(sys.argv[1]), float(sys.argv[2]), print)
assert lock.try_acquire()
print("held", flush=True)
sys.stdin.readline()
try:
    lock.check_held()
except FetchError as exc:
    print(exc, flush=True)
    lock.release()
    sys.exit(exc.code)
lock.release()
"""


def test_holder_that_lost_its_lock_stops(tmp_path: Path) -> None:
    """A frozen pod (SIGSTOP: its heartbeats stop with it) loses the lock to a waiter once the
    lease goes stale; woken up, it finds out before committing and leaves the new lock alone."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "0.3"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        os.kill(holder.pid, signal.SIGSTOP)  # the holder stalls: no more heartbeats
        time.sleep(0.8)
        thief, _ = new_lock(tmp_path, timeout_s=0.3)
        assert thief.try_acquire()
        os.kill(holder.pid, signal.SIGCONT)
        out, _ = holder.communicate("commit?\n", timeout=30)
        assert holder.returncode == ExitCode.LOCK_LOST, out
        assert "lost the download lock" in out
        assert lock_path(tmp_path).exists(), "the loser must not delete the new holder's lock"
        thief.check_held()
        thief.release()
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGCONT)
            holder.kill()
            holder.wait()
