"""Hashing while bytes land: in order, out of order, resumed, and corrupted on disk; each both
inline and through the hashing thread that large files use (hashlane.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from emotivoice_fetch import staged as staged_module
from emotivoice_fetch.plan import RemoteObject
from emotivoice_fetch.staged import FileJob, StagedFile, load_journal

MB = 1024 * 1024
DATA = os.urandom(6 * MB + 123)


@pytest.fixture(autouse=True, params=["inline", "lane"])
def hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the hash inline and on the lane thread (a 6 MB file is below the
    real size threshold, so the lane is forced for it)."""
    monkeypatch.setattr(staged_module, "LANE_MIN_BYTES", 0 if request.param == "lane" else 1 << 62)
    return request.param


def job_in(tmp_path: Path, size: int = len(DATA)) -> FileJob:
    obj = RemoteObject("w.bin", "m/w.bin", size, '"etag"')
    return FileJob(obj, tmp_path / "data" / "w.bin", tmp_path / "journal" / "w.bin.parts")


def land(staged: StagedFile, start: int, end: int, data: bytes = DATA) -> None:
    for pos in range(start, end, MB):
        staged.land(memoryview(data[pos : min(end, pos + MB)]), pos)


def finish(staged: StagedFile) -> dict[str, str]:
    digests: dict[str, str] = {}
    staged.on_complete = lambda job, digest: digests.setdefault(job.obj.relpath, digest)
    staged.catch_up()
    staged.close()
    return digests


def test_in_order_is_hashed_in_stream(tmp_path: Path, hashing: str) -> None:
    staged = StagedFile(job_in(tmp_path), [], lambda job, digest: None)
    assert (staged._lane is not None) == (hashing == "lane")
    land(staged, 0, len(DATA))
    assert staged.hashed == len(DATA), "hashed as it landed, nothing left to read back"
    assert finish(staged) == {"w.bin": hashlib.sha256(DATA).hexdigest()}


def test_out_of_order_is_read_back_in_order(tmp_path: Path) -> None:
    staged = StagedFile(job_in(tmp_path), [], lambda job, digest: None)
    land(staged, 3 * MB, len(DATA))
    staged.catch_up()
    assert staged.hashed == 0, "nothing hashed across the gap"
    land(staged, 0, 3 * MB)
    assert finish(staged) == {"w.bin": hashlib.sha256(DATA).hexdigest()}


def test_a_resumed_prefix_is_hashed_from_disk(tmp_path: Path) -> None:
    job = job_in(tmp_path)
    first = StagedFile(job, [], lambda job, digest: None)
    land(first, 0, 2 * MB)
    first.close()  # as a crash after a journal flush leaves it
    done = load_journal(job)
    assert done == [(0, 2 * MB)]
    again = StagedFile(job, done, lambda job, digest: None)
    again.catch_up()
    assert again.hashed == 2 * MB
    land(again, 2 * MB, len(DATA))
    assert finish(again) == {"w.bin": hashlib.sha256(DATA).hexdigest()}


def test_bytes_corrupted_on_disk_change_the_digest(tmp_path: Path) -> None:
    """What is read back is what is on disk: a bad journaled part cannot pass for a good one."""
    job = job_in(tmp_path)
    first = StagedFile(job, [], lambda job, digest: None)
    land(first, 0, 2 * MB)
    first.close()
    with open(job.data_path, "r+b") as f:
        f.seek(MB + 7)
        byte = f.read(1)[0]
        f.seek(MB + 7)
        f.write(bytes([byte ^ 0xFF]))
    again = StagedFile(job, load_journal(job), lambda job, digest: None)
    land(again, 2 * MB, len(DATA))
    assert finish(again) != {"w.bin": hashlib.sha256(DATA).hexdigest()}
