"""Boot-checked durability against a real S3 server: no fsync on the cold path, a simulated
reboot (another boot id, through the documented test hook) makes every unsynced record suspect
until the files were re-hashed from disk; `--durability fsync` keeps the old behaviour."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from emotivoice_fetch.durability import BOOT_ID_ENV
from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.lock import LeaseLock
from emotivoice_fetch.marker import IncompleteModel, UnsyncedFromOtherBoot, verify_complete
from emotivoice_fetch.paths import marker_path, staging_dir
from emotivoice_fetch.plan import RemoteObject
from emotivoice_fetch.staged import FileJob, StagedFile
from tests.fetch.conftest import Model, Result, run_fetch, upload
from tests.fetch.s3server import VersityGW

MB = 1024 * 1024
FILES = {
    "config.json": b'{"a": 1}',
    "ckpt/g.pth": os.urandom(3 * MB + 17),
    "ckpt/d.pth": os.urandom(2 * MB),
}


def fetch(
    gw: VersityGW, model: Model, dest: Path, boot: str, *extra: str, pins: bool = False
) -> Result:
    env = {BOOT_ID_ENV: boot}
    if pins:
        env["EMOTIVOICE_EXPECTED_SHA256"] = json.dumps(model.sha256())
    return run_fetch(gw, model.uri, dest, *extra, env=env)


def marker_doc(dest: Path) -> dict[str, Any]:
    return json.loads(marker_path(dest).read_bytes())


def damage_in_place(path: Path, offset: int) -> None:
    """What a lost write looks like after a reboot: other bytes, same inode, size and mtime."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_ino == st.st_ino and path.stat().st_mtime_ns == st.st_mtime_ns


def downloaded_mb(result: Result) -> float:
    line = next(x for x in result.out.splitlines() if ": downloaded " in x)
    return float(line.split(": downloaded ")[1].split()[0])


def test_cold_fetch_is_unsynced_and_tied_to_the_boot(
    gw: VersityGW, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    result = fetch(gw, model, dest, "boot-a")
    assert result.rc == 0, result.out
    doc = marker_doc(dest)
    assert doc["synced"] is False and doc["boot_id"] == "boot-a"
    assert "not fsynced, trusted during boot boot-a" in result.out

    monkeypatch.setenv(BOOT_ID_ENV, "boot-a")
    assert verify_complete(dest).sha256 == model.sha256()
    monkeypatch.setenv(BOOT_ID_ENV, "boot-b")
    with pytest.raises(UnsyncedFromOtherBoot, match=r"run emotivoice-fetch .* to re-verify"):
        verify_complete(dest)
    monkeypatch.setenv(BOOT_ID_ENV, "")  # boot id unreadable: cannot be the same boot
    with pytest.raises(UnsyncedFromOtherBoot):
        verify_complete(dest)


def test_reboot_with_intact_cache_rehashes_then_is_quick(
    gw: VersityGW, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert fetch(gw, model, dest, "boot-a").rc == 0
    same_boot = fetch(gw, model, dest, "boot-a")
    assert same_boot.rc == 0 and "cache complete" in same_boot.out, same_boot.out

    after_reboot = fetch(gw, model, dest, "boot-b")
    assert after_reboot.rc == 0, after_reboot.out
    assert "re-hashing every file" in after_reboot.out
    assert f"({len(FILES)} re-hashed from disk)" in after_reboot.out
    assert downloaded_mb(after_reboot) == 0.0
    doc = marker_doc(dest)
    assert doc["synced"] is True and doc["boot_id"] == "boot-b"

    for boot in ("boot-b", "boot-c"):  # synced now: quick in this boot and after the next
        again = fetch(gw, model, dest, boot)
        assert again.rc == 0 and "cache complete" in again.out, again.out
        monkeypatch.setenv(BOOT_ID_ENV, boot)
        assert verify_complete(dest).sha256 == model.sha256()


@pytest.mark.parametrize("pins", [False, True], ids=["etag-only", "pinned"])
def test_reboot_with_damaged_files_refetches_them(
    gw: VersityGW, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pins: bool
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert fetch(gw, model, dest, "boot-a", pins=pins).rc == 0
    damage_in_place(dest / "ckpt/g.pth", 2 * MB + 5)
    os.truncate(dest / "ckpt/d.pth", MB)  # the tail never reached the disk

    result = fetch(gw, model, dest, "boot-b", pins=pins)
    assert result.rc == 0, result.out
    assert "ckpt/g.pth on disk does not match its sha256" in result.out
    assert "(1 re-hashed from disk)" in result.out  # config.json; the other two re-fetched
    assert downloaded_mb(result) == pytest.approx((len(FILES["ckpt/g.pth"]) + 2 * MB) / 1e6, 0.01)
    for relpath, content in FILES.items():
        assert (dest / relpath).read_bytes() == content
    doc = marker_doc(dest)
    assert doc["synced"] is False and doc["boot_id"] == "boot-b"  # fresh bytes, not fsynced
    monkeypatch.setenv(BOOT_ID_ENV, "boot-b")
    assert verify_complete(dest).sha256 == model.sha256()


def test_commit_journal_from_another_boot_is_rehashed(gw: VersityGW, tmp_path: Path) -> None:
    """A run killed after committing files but before its marker, then a reboot: the commit
    journal's unsynced records only say what to re-hash against."""
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert fetch(gw, model, dest, "boot-a").rc == 0
    doc = marker_doc(dest)
    staging = staging_dir(dest)
    staging.mkdir()
    with open(staging / "committed.jsonl", "w") as f:
        for relpath, rec in doc["files"].items():
            line = {"relpath": relpath, "record": rec, "synced": False, "boot_id": "boot-a"}
            f.write(json.dumps(line) + "\n")
    marker_path(dest).unlink()
    damage_in_place(dest / "ckpt/d.pth", 7)

    result = fetch(gw, model, dest, "boot-b")
    assert result.rc == 0, result.out
    assert "ckpt/d.pth on disk does not match its sha256" in result.out
    assert "(2 re-hashed from disk)" in result.out
    assert (dest / "ckpt/d.pth").read_bytes() == FILES["ckpt/d.pth"]


def test_unreachable_store_after_reboot_reverifies_from_the_marker(
    gw: VersityGW, tmp_path: Path
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert fetch(gw, model, dest, "boot-a").rc == 0
    offline = run_fetch(
        gw,
        model.uri,
        dest,
        env={BOOT_ID_ENV: "boot-b"},
        endpoint="http://127.0.0.1:9",  # nothing listens: the store is unreachable
    )
    assert offline.rc == 0, offline.out
    assert "re-verifying the cache" in offline.out
    assert marker_doc(dest)["synced"] is True


def test_fsync_mode_is_trusted_across_reboots(
    gw: VersityGW, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    result = fetch(gw, model, dest, "boot-a", "--durability", "fsync", pins=True)
    assert result.rc == 0, result.out
    doc = marker_doc(dest)
    assert doc["synced"] is True and doc["boot_id"] == "boot-a"
    monkeypatch.setenv(BOOT_ID_ENV, "boot-b")
    assert verify_complete(dest).sha256 == model.sha256()
    again = fetch(gw, model, dest, "boot-b", "--durability", "fsync", pins=True)
    assert again.rc == 0 and "cache complete" in again.out, again.out


def test_fsync_asked_later_syncs_the_cache_in_place(
    gw: VersityGW, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec switched to `durability: fsync` after a `boot` fetch: the next start syncs the
    verified files and rewrites the marker as synced, without downloading or re-hashing; while
    another pod holds the lock it leaves that for a later start."""
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert fetch(gw, model, dest, "boot-a").rc == 0
    assert marker_doc(dest)["synced"] is False
    inodes = {rel: (dest / rel).stat().st_ino for rel in FILES}

    other_pod = LeaseLock(dest, 30.0, lambda _: None)
    assert other_pod.try_acquire()
    try:
        busy = fetch(gw, model, dest, "boot-a", "--durability", "fsync")
    finally:
        other_pod.release()
    assert busy.rc == 0 and "cache complete" in busy.out, busy.out
    assert "syncing it later" in busy.out
    assert marker_doc(dest)["synced"] is False

    synced = fetch(gw, model, dest, "boot-a", "--durability", "fsync")
    assert synced.rc == 0 and "cache complete" in synced.out, synced.out
    assert "fsynced the verified model" in synced.out
    doc = marker_doc(dest)
    assert doc["synced"] is True and doc["boot_id"] == "boot-a"
    assert {rel: (dest / rel).stat().st_ino for rel in FILES} == inodes  # nothing re-downloaded

    monkeypatch.setenv(BOOT_ID_ENV, "boot-b")  # a reboot: trusted as it is
    assert verify_complete(dest).sha256 == model.sha256()
    after_reboot = fetch(gw, model, dest, "boot-b")
    assert after_reboot.rc == 0 and "cache complete" in after_reboot.out, after_reboot.out
    assert "re-hashing" not in after_reboot.out


def test_unreadable_boot_id_falls_back_to_fsync(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert fetch(gw, model, dest, "").rc == 0
    doc = marker_doc(dest)
    assert doc["synced"] is True and doc["boot_id"] is None


def test_old_format_marker_counts_as_synced(
    gw: VersityGW, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    assert fetch(gw, model, dest, "boot-a", "--durability", "fsync").rc == 0
    doc = marker_doc(dest)
    old = {k: v for k, v in doc.items() if k not in ("synced", "boot_id")} | {"format": 1}
    marker_path(dest).write_text(json.dumps(old))
    monkeypatch.setenv(BOOT_ID_ENV, "boot-z")
    assert verify_complete(dest).sha256 == model.sha256()
    marker_path(dest).write_text(json.dumps(doc | {"format": 3}))
    with pytest.raises(IncompleteModel, match="unknown format"):
        verify_complete(dest)


def stage_unsynced_prefix(dest: Path, obj: RemoteObject, prefix: bytes, boot: str) -> None:
    """What a process killed mid-download in `boot` mode leaves: bytes and an unsynced journal."""
    staging = staging_dir(dest)
    job = FileJob(
        obj, staging / "data" / obj.relpath, staging / "journal" / (obj.relpath + ".parts")
    )
    staged = StagedFile(job, [], lambda job, digest: None, sync=False, boot_id=boot)
    staged.land(memoryview(prefix), 0)
    staged.close()
    assert '"synced": false' in job.journal_path.read_text()


def big_object(gw: VersityGW) -> tuple[Model, RemoteObject, bytes]:
    content = bytes(range(256)) * (12 * MB // 256)
    model = upload(gw, {"w.bin": content})
    etag = gw.client().head_object(Bucket=model.bucket, Key=f"{model.prefix}/w.bin")["ETag"]
    return model, RemoteObject("w.bin", f"{model.prefix}/w.bin", len(content), etag), content


def test_resume_after_kill_in_the_same_boot_is_verified_end_to_end(
    gw: VersityGW, tmp_path: Path
) -> None:
    model, obj, content = big_object(gw)
    good, bad = tmp_path / "good", tmp_path / "bad"
    stage_unsynced_prefix(good, obj, content[: 5 * MB], "boot-a")
    damaged = bytearray(content[: 5 * MB])
    damaged[MB] ^= 0xFF
    stage_unsynced_prefix(bad, obj, bytes(damaged), "boot-a")

    resumed = fetch(gw, model, good, "boot-a", pins=True)
    assert resumed.rc == 0, resumed.out
    assert "5.2 MB resumed" in resumed.out
    assert (good / "w.bin").read_bytes() == content

    caught = fetch(gw, model, bad, "boot-a", pins=True)
    assert "5.2 MB resumed" in caught.out
    assert caught.rc == ExitCode.CHECKSUM_MISMATCH, caught.out
    assert not (bad / "w.bin").exists()


def test_unsynced_journal_from_another_boot_is_not_resumed(gw: VersityGW, tmp_path: Path) -> None:
    model, obj, content = big_object(gw)
    dest = tmp_path / "m"
    damaged = bytearray(content[: 5 * MB])
    damaged[MB] ^= 0xFF  # what a reboot may leave where the journal claims landed bytes
    stage_unsynced_prefix(dest, obj, bytes(damaged), "boot-a")
    result = fetch(gw, model, dest, "boot-b")  # no pins: only a fresh download is safe
    assert result.rc == 0, result.out
    assert "resumed" not in result.out
    assert (dest / "w.bin").read_bytes() == content
