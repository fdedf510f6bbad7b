"""The test sessions' registry (tests/support/cluster_sessions.py), with no cluster: a state
directory under tmp_path, fake process ids and a fake control plane that records what it was
asked to do. The last test runs hack/cluster.sh itself (its `down` on an empty state directory
stops nothing) to show that the registry's lock is the script's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cluster import CLUSTER_SCRIPT
from tests.support.cluster_sessions import (
    LOCK_HELD_ENV,
    ControlPlane,
    Released,
    SessionRegistry,
    lock_path,
)


@dataclass
class FakePlane:
    """A control plane that is up or down, and counts its starts and stops."""

    state: Path
    running: bool = False
    calls: list[str] = field(default_factory=list)
    fail_up: bool = False

    def up(self) -> None:
        self.calls.append("up")
        if self.fail_up:
            raise RuntimeError("up failed")
        self.state.mkdir(exist_ok=True)
        self.running = True

    def down(self) -> None:
        """Like hack/cluster.sh down: stops and removes the state directory."""
        self.calls.append("down")
        self.running = False
        shutil.rmtree(self.state)

    def control(self) -> ControlPlane:
        return ControlPlane(healthy=lambda: self.running, up=self.up, down=self.down)


@pytest.fixture
def plane(tmp_path: Path) -> FakePlane:
    return FakePlane(tmp_path / "state")


def registry(plane: FakePlane, alive: set[int]) -> SessionRegistry:
    return SessionRegistry(plane.state, plane.control(), is_alive=lambda pid: pid in alive)


def test_a_cluster_the_tests_start_stops_after_the_last_session(plane: FakePlane) -> None:
    alive = {101, 102}
    sessions = registry(plane, alive)
    assert sessions.acquire(101) is True
    assert sessions.acquire(102) is False  # the second session finds it up
    assert plane.calls == ["up"]
    assert sessions.test_owned.exists()

    assert sessions.release(101) is Released.SHARED
    assert plane.running
    assert sessions.release(102) is Released.STOPPED
    assert plane.calls == ["up", "down"]


def test_a_session_that_died_without_releasing_does_not_keep_it_up(plane: FakePlane) -> None:
    alive = {201, 202}
    sessions = registry(plane, alive)
    sessions.acquire(201)
    sessions.acquire(202)
    alive.discard(201)  # killed: it never releases
    assert sessions.release(202) is Released.STOPPED
    assert plane.calls == ["up", "down"]


def test_dead_sessions_are_pruned_while_live_ones_keep_it_up(plane: FakePlane) -> None:
    alive = {301, 302, 303}
    sessions = registry(plane, alive)
    for pid in sorted(alive):
        sessions.acquire(pid)
    (sessions.sessions / "junk").touch()  # not a pid: never a live session
    alive.discard(302)
    assert sessions.release(301) is Released.SHARED
    assert sorted(p.name for p in sessions.sessions.iterdir()) == ["303"]
    assert plane.running


def test_a_cluster_a_user_started_is_never_stopped(plane: FakePlane) -> None:
    plane.up()  # `make cluster` before the tests
    plane.calls.clear()
    sessions = registry(plane, {401})
    assert sessions.acquire(401) is False
    assert not sessions.test_owned.exists()
    assert sessions.release(401) is Released.USERS
    assert plane.running and plane.calls == []


def test_a_user_up_during_the_tests_keeps_it_after_them(plane: FakePlane) -> None:
    sessions = registry(plane, {501})
    sessions.acquire(501)
    sessions.test_owned.unlink()  # what `hack/cluster.sh up` does to a test-owned cluster
    assert sessions.release(501) is Released.USERS
    assert plane.running


def test_a_failed_start_registers_nothing(plane: FakePlane) -> None:
    plane.fail_up = True
    sessions = registry(plane, {601})
    with pytest.raises(RuntimeError, match="up failed"):
        sessions.acquire(601)
    assert not sessions.sessions.exists() and not sessions.test_owned.exists()


def test_release_after_a_user_stopped_it_does_nothing(plane: FakePlane) -> None:
    sessions = registry(plane, {701})
    sessions.acquire(701)
    plane.down()  # `make cluster-down` during the tests
    assert sessions.release(701) is Released.GONE
    assert plane.calls == ["up", "down"]


def test_the_registry_holds_the_lock_hack_cluster_sh_takes(tmp_path: Path) -> None:
    """While the registry holds its lock, `hack/cluster.sh down` on the same state directory
    waits for it, unless told the lock is held (as the registry's own up and down are); told of
    another lock, it refuses. Without this, a session's start and another's stop interleave."""
    state = tmp_path / "state"
    state.mkdir()
    sessions = SessionRegistry(state, FakePlane(state).control())
    env = {**os.environ, "EVS_CLUSTER_DIR": str(state)}
    env.pop(LOCK_HELD_ENV, None)
    down = ["bash", str(CLUSTER_SCRIPT), "down"]
    with sessions.locked():
        waiting = subprocess.Popen(down, env=env, start_new_session=True, stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)  # `down` of an empty state directory takes milliseconds
            assert waiting.poll() is None, "hack/cluster.sh down did not wait for the lock"
        finally:
            os.killpg(waiting.pid, signal.SIGKILL)
            waiting.wait()
            assert waiting.stderr is not None
            waiting.stderr.close()
        assert state.is_dir()

        wrong = subprocess.run(
            down, env={**env, LOCK_HELD_ENV: "/tmp/evs-cluster-other.lock"},
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert wrong.returncode != 0 and "EVS_CLUSTER_LOCK_HELD" in wrong.stderr
        assert state.is_dir()

        held = subprocess.run(
            down, env={**env, LOCK_HELD_ENV: str(lock_path(state))},
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert held.returncode == 0, held.stderr
        assert not state.exists()  # down removed the state directory
