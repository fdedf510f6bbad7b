"""The CLI against a real S3 server (versitygw on loopback): downloads, warm starts, manifests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from emotivoice_fetch.marker import verify_complete
from emotivoice_fetch.paths import marker_path, staging_dir
from tests.fetch.conftest import Model, run_fetch, upload
from tests.fetch.s3server import VersityGW, random_file

MULTI = {
    "config.json": b'{"sampling_rate": 16000}',
    "outputs/prompt_tts_open_source_joint/ckpt/g_00140000": os.urandom(3_000_000),
    "outputs/style_encoder/ckpt/checkpoint_163431": os.urandom(1_500_001),
    "WangZeJun/simbert-base-chinese/vocab.txt": b"[PAD]\n[UNK]\n" * 1000,
    "WangZeJun/simbert-base-chinese/empty.txt": b"",
}


def assert_model_in(dest: Path, model: Model) -> None:
    for rel in model.files:
        assert (dest / rel).read_bytes() == model.content(rel), rel
    complete = verify_complete(dest)
    assert complete.sha256 == model.sha256()
    assert not staging_dir(dest).exists()


def test_multi_file_model_then_warm_start(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, MULTI)
    dest = tmp_path / "models" / "emo"
    # Small parts so that the 3 MB file is fetched as several ranged GETs.
    first = run_fetch(gw, model.uri, dest, "--part-size-mb", "1", "--concurrency", "4")
    assert first.rc == 0, first.out
    assert "downloaded" in first.out
    assert_model_in(dest, model)
    marker = marker_path(dest).stat()

    second = run_fetch(gw, model.uri, dest)
    assert second.rc == 0, second.out
    assert "cache complete" in second.out
    assert marker_path(dest).stat().st_mtime_ns == marker.st_mtime_ns  # nothing rewritten


def test_changed_file_is_fetched_again_and_only_it(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, MULTI)
    dest = tmp_path / "m"
    assert run_fetch(gw, model.uri, dest).rc == 0
    victim = dest / "outputs/style_encoder/ckpt/checkpoint_163431"
    os.truncate(victim, 1000)  # a half-written or damaged file
    kept = dest / "config.json"
    kept_inode = kept.stat().st_ino
    again = run_fetch(gw, model.uri, dest)
    assert again.rc == 0, again.out
    assert "downloading 1 of 5 files" in again.out
    assert kept.stat().st_ino == kept_inode
    assert_model_in(dest, model)


def test_changed_object_in_the_store_is_picked_up(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, MULTI)
    dest = tmp_path / "m"
    assert run_fetch(gw, model.uri, dest).rc == 0
    gw.client().put_object(Bucket=model.bucket, Key=f"{model.prefix}/config.json", Body=b"{}")
    model.files["config.json"] = b"{}"
    again = run_fetch(gw, model.uri, dest)
    assert again.rc == 0, again.out
    assert "downloading 1 of 5 files" in again.out
    assert_model_in(dest, model)


def test_manifest_selects_and_verifies_files(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, MULTI)
    sums = model.sha256()
    chosen = ["config.json", "outputs/prompt_tts_open_source_joint/ckpt/g_00140000"]
    manifest = "".join(f"{sums[rel]}  ./{rel}\n" for rel in chosen).encode()
    gw.client().put_object(Bucket=model.bucket, Key=f"{model.prefix}/SHA256SUMS", Body=manifest)
    dest = tmp_path / "m"
    pins = json.dumps({"config.json": sums["config.json"]})
    result = run_fetch(
        gw, model.uri, dest, "--manifest", "SHA256SUMS", env={"EMOTIVOICE_EXPECTED_SHA256": pins}
    )
    assert result.rc == 0, result.out
    assert sorted(verify_complete(dest).files) == sorted(chosen)
    assert not (dest / "SHA256SUMS").exists()
    assert not (dest / "outputs/style_encoder").exists()


def test_pinned_checksums_make_the_warm_start_offline(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, MULTI)
    dest = tmp_path / "m"
    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}
    assert run_fetch(gw, model.uri, dest, env=pins).rc == 0
    # Nothing listens on the endpoint now: the marker and the pins are enough.
    warm = run_fetch(gw, model.uri, dest, env=pins, endpoint="http://127.0.0.1:9")
    assert warm.rc == 0, warm.out
    assert "cache complete" in warm.out


@pytest.mark.slow
def test_large_file_multipart_ranged(gw: VersityGW, tmp_path: Path) -> None:
    """A >= 100 MB object uploaded in multipart, fetched in 8 MiB ranged parts over 4 streams."""
    big = random_file(tmp_path / "big.bin", 120 * 1024 * 1024 + 12345, seed=1)
    model = upload(gw, {"simbert/pytorch_model.bin": big, "config.json": b"{}"})
    etag = gw.client().head_object(
        Bucket=model.bucket, Key=f"{model.prefix}/simbert/pytorch_model.bin"
    )["ETag"]
    assert "-" in etag, "the fixture should have been a multipart upload"
    dest = tmp_path / "m"
    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}
    result = run_fetch(
        gw,
        model.uri,
        dest,
        "--part-size-mb",
        "8",
        "--concurrency",
        "4",
        "--progress-interval",
        "0.2",
        env=pins,
    )
    assert result.rc == 0, result.out
    with open(dest / "simbert/pytorch_model.bin", "rb") as f:
        assert (
            hashlib.file_digest(f, "sha256").hexdigest()
            == model.sha256()["simbert/pytorch_model.bin"]
        )
    assert verify_complete(dest).files["simbert/pytorch_model.bin"].size == big.stat().st_size


def test_the_log_says_what_pinned_the_content(gw: VersityGW, tmp_path: Path) -> None:
    """Issue 16: without a manifest or pinned checksums only the listing's size was checked; the
    log must not call that "verified", and says nothing pins the content."""
    model = upload(gw, {"a.bin": b"hello world", "b.bin": b"more bytes"})
    bare = run_fetch(gw, model.uri, tmp_path / "bare")
    assert bare.rc == 0, bare.out
    assert "checked by size only" in bare.out and "nothing pins their content" in bare.out
    assert "MB verified" not in bare.out
    warm = run_fetch(gw, model.uri, tmp_path / "bare")
    assert "checked by size only" in warm.out

    pins = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}
    pinned = run_fetch(gw, model.uri, tmp_path / "pinned", env=pins)
    assert pinned.rc == 0, pinned.out
    assert "verified (sha256)" in pinned.out and "nothing pins" not in pinned.out
