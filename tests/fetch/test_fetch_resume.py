"""A resumed download is verified as a whole: a journaled part that went bad on disk (or a part
the store sent wrong) fails the checksum, and the next run starts that file afresh."""

from __future__ import annotations

import json
from pathlib import Path

from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.marker import verify_complete
from emotivoice_fetch.paths import staging_dir
from emotivoice_fetch.plan import RemoteObject
from emotivoice_fetch.staged import FileJob, StagedFile
from tests.fetch.conftest import Model, run_fetch, upload
from tests.fetch.s3server import VersityGW

MB = 1024 * 1024


def stage_prefix(dest: Path, obj: RemoteObject, prefix: bytes) -> None:
    """Leave what a crashed run leaves: the first bytes on disk, journaled."""
    staging = staging_dir(dest)
    job = FileJob(
        obj, staging / "data" / obj.relpath, staging / "journal" / (obj.relpath + ".parts")
    )
    staged = StagedFile(job, [], lambda job, digest: None)
    staged.land(memoryview(prefix), 0)
    staged.close()


def one_file_model(gw: VersityGW, tmp_path: Path) -> tuple[bytes, Model, RemoteObject, Path]:
    """A 12 MB one-file model in the bucket, its object as the planner sees it, an empty dest."""
    content = bytes(range(256)) * (12 * MB // 256)
    model = upload(gw, {"w.bin": content})
    etag = gw.client().head_object(Bucket=model.bucket, Key=f"{model.prefix}/w.bin")["ETag"]
    obj = RemoteObject("w.bin", f"{model.prefix}/w.bin", len(content), etag)
    dest = tmp_path / "m"
    dest.mkdir()
    return content, model, obj, dest


def test_corrupted_resumed_prefix_is_caught_then_refetched(gw: VersityGW, tmp_path: Path) -> None:
    content, model, obj, dest = one_file_model(gw, tmp_path)
    bad = bytearray(content[: 5 * MB])
    bad[3 * MB] ^= 0xFF
    stage_prefix(dest, obj, bytes(bad))
    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}

    first = run_fetch(gw, model.uri, dest, env=pins)
    assert "MB resumed" in first.out, first.out
    assert first.rc == ExitCode.CHECKSUM_MISMATCH, first.out
    assert not (dest / "w.bin").exists()

    second = run_fetch(gw, model.uri, dest, env=pins)
    assert second.rc == 0, second.out
    assert "MB resumed" not in second.out, "the bad partial file was discarded"
    assert verify_complete(dest).sha256 == model.sha256()


def test_good_resumed_prefix_completes(gw: VersityGW, tmp_path: Path) -> None:
    content, model, obj, dest = one_file_model(gw, tmp_path)
    stage_prefix(dest, obj, content[: 5 * MB])
    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}
    result = run_fetch(gw, model.uri, dest, env=pins)
    assert result.rc == 0, result.out
    assert "5.2 MB resumed" in result.out, result.out
    assert verify_complete(dest).sha256 == model.sha256()
