"""Fixtures for the fetch tests: a real S3 server (versitygw) on loopback, the CLI as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fetch.hung import HungListener
from tests.fetch.s3server import VersityGW, put_model, versitygw_binary

REPO = Path(__file__).resolve().parents[2]
FETCH_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def gw_binary() -> Path:
    return versitygw_binary()


@pytest.fixture(scope="session")
def gw(gw_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VersityGW]:
    """One versitygw for the session; every test uses its own bucket."""
    root = tmp_path_factory.mktemp("s3")
    server = VersityGW(gw_binary, root / "data", root / "versitygw.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_gw(gw_binary: Path, tmp_path: Path) -> Iterator[VersityGW]:
    """A versitygw for one test that kills and restarts it."""
    server = VersityGW(gw_binary, tmp_path / "s3", tmp_path / "versitygw.log").start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Model:
    """A model uploaded to the store: where it is and what it holds."""

    bucket: str
    prefix: str
    files: dict[str, bytes | Path]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def content(self, relpath: str) -> bytes:
        value = self.files[relpath]
        return value.read_bytes() if isinstance(value, Path) else value

    def sha256(self) -> dict[str, str]:
        import hashlib

        return {rel: hashlib.sha256(self.content(rel)).hexdigest() for rel in self.files}


def upload(server: VersityGW, files: dict[str, bytes | Path], prefix: str = "models/m") -> Model:
    bucket = "b-" + uuid.uuid4().hex[:12]
    put_model(server.client(), bucket, prefix, files)
    return Model(bucket, prefix, files)


@dataclass
class Result:
    rc: int
    out: str  # stdout and stderr together


def fetch_command(endpoint: str, source: str, dest: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "emotivoice_fetch",
        "--source",
        source,
        "--dest",
        str(dest),
        "--endpoint-url",
        endpoint,
        "--path-style",
        *extra,
    ]


def fetch_env(
    credentials: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The process environment: ours minus any AWS settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EMOTIVOICE_"))}
    # The repository (tests.fetch.hooks for --after-verify) and this tree's fetch step, ahead
    # of whatever an editable install points at (another checkout of the repository).
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "server")])
    env.update(credentials)
    env.update(extra or {})
    return env


def run_fetch(
    server: VersityGW,
    source: str,
    dest: Path,
    *extra: str,
    env: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    credentials: Mapping[str, str] | None = None,
    prefix_cmd: Sequence[str] = (),
) -> Result:
    """Run the CLI to completion (bounded in time)."""
    cmd = [*prefix_cmd, *fetch_command(endpoint or server.endpoint, source, dest, *extra)]
    proc = subprocess.run(
        cmd,
        env=fetch_env(server.env if credentials is None else credentials, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=FETCH_TIMEOUT_S,
        check=False,
    )
    return Result(proc.returncode, proc.stdout)


def start_fetch(
    server: VersityGW,
    source: str,
    dest: Path,
    log: Path,
    *extra: str,
    endpoint: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the CLI in the background, its output going to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            fetch_command(endpoint or server.endpoint, source, dest, *extra),
            env=fetch_env(server.env, env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def hung() -> Iterator[HungListener]:
    """A listener that accepts and never answers (a hung store), stopped after the test."""
    listener = HungListener().start()
    try:
        yield listener
    finally:
        listener.stop()
