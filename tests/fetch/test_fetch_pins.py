"""The spec's pinned checksums against the cache's marker, compared first, store or no store.

The rule: a pin that contradicts the marker means the cache is not the model the spec asks
for, so it is never started on as it is. With the store up, the pinned version is fetched (and
must match the pin); with the store down, hung or refusing us, the step stops with the
checksum-mismatch exit code naming the file and both digests. Before issue 17, with the store
down, such pins were ignored and the cache used ("using the verified cache as it is", exit 0)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.marker import verify_complete
from tests.fetch.conftest import Model, run_fetch, upload
from tests.fetch.hung import HungListener
from tests.fetch.s3server import VersityGW, free_port

FILES = {"config.json": b'{"a": 1}', "ckpt/g.pth": os.urandom(1_500_000)}
CHECK_S = 2.0
NEW_CONFIG = b'{"a": 2}'


def pins_env(sums: dict[str, str]) -> dict[str, str]:
    return {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(sums)}


def cached(gw: VersityGW, dest: Path, pinned: bool = False) -> Model:
    """FILES uploaded and fetched into ``dest`` (with every file pinned, or none): the
    verified cache each case starts from. Returns the uploaded model."""
    model = upload(gw, FILES)
    env = pins_env(model.sha256()) if pinned else None
    result = run_fetch(gw, model.uri, dest, env=env)
    assert result.rc == 0, result.out
    return model


def error_line(out: str) -> str:
    lines = [line for line in out.splitlines() if "error:" in line]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.parametrize("store", ["hung", "refused"])
def test_a_pin_that_contradicts_the_marker_is_refused_with_the_store_down(
    store: str, gw: VersityGW, hung: HungListener, tmp_path: Path
) -> None:
    model = upload(gw, FILES)
    dest = tmp_path / "m"
    old = model.sha256()
    assert run_fetch(gw, model.uri, dest, env=pins_env(old)).rc == 0
    new = {**old, "config.json": hashlib.sha256(NEW_CONFIG).hexdigest()}
    endpoint = hung.endpoint if store == "hung" else f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = run_fetch(
        gw,
        model.uri,
        dest,
        "--remote-check-timeout",
        str(CHECK_S),
        env=pins_env(new),
        endpoint=endpoint,
    )
    wall = time.monotonic() - start
    assert result.rc == ExitCode.CHECKSUM_MISMATCH, result.out
    line = error_line(result.out)
    assert "contradict the verified cache" in line
    assert f"config.json: pinned sha256 {new['config.json']}" in line
    assert f"the cache holds {old['config.json']}" in line
    assert "ckpt/g.pth" not in line, "only the contradicted file is named"
    assert wall < CHECK_S * 3, f"{wall:.1f} s"
    # Refused, not damaged: the cache is still the complete model it was.
    assert verify_complete(dest).sha256 == old


def test_a_pin_for_a_file_the_cache_lacks_is_refused_with_the_store_down(
    gw: VersityGW, tmp_path: Path
) -> None:
    dest = tmp_path / "m"
    model = cached(gw, dest)
    extra = {"ckpt/new.pth": "a" * 64}
    result = run_fetch(
        gw, model.uri, dest, env=pins_env(extra), endpoint=f"http://127.0.0.1:{free_port()}"
    )
    assert result.rc == ExitCode.CHECKSUM_MISMATCH, result.out
    assert f"ckpt/new.pth: pinned sha256 {'a' * 64}, the cache has no such file" in error_line(
        result.out
    )


def test_with_the_store_up_a_contradicting_pin_fetches_the_pinned_version(
    gw: VersityGW, tmp_path: Path
) -> None:
    """A new model version uploaded and pinned: the cache is updated, only the changed file."""
    dest = tmp_path / "m"
    model = cached(gw, dest, pinned=True)
    kept = (dest / "ckpt/g.pth").stat().st_ino
    gw.client().put_object(Bucket=model.bucket, Key=f"{model.prefix}/config.json", Body=NEW_CONFIG)
    model.files["config.json"] = NEW_CONFIG
    result = run_fetch(gw, model.uri, dest, env=pins_env(model.sha256()))
    assert result.rc == 0, result.out
    assert "contradict the verified cache" in result.out
    assert "downloading 1 of 2 files" in result.out
    assert (dest / "config.json").read_bytes() == NEW_CONFIG
    assert (dest / "ckpt/g.pth").stat().st_ino == kept
    assert verify_complete(dest).sha256 == model.sha256()


def test_with_the_store_up_a_pin_nothing_matches_is_a_checksum_mismatch(
    gw: VersityGW, tmp_path: Path
) -> None:
    dest = tmp_path / "m"
    model = cached(gw, dest)
    wrong = {**model.sha256(), "config.json": "f" * 64}
    result = run_fetch(gw, model.uri, dest, env=pins_env(wrong))
    assert result.rc == ExitCode.CHECKSUM_MISMATCH, result.out
    assert "checksum mismatch for config.json: expected sha256 ffff" in error_line(result.out)
