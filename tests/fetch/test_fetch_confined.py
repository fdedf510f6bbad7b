"""Symbolic links in the cache are never followed (issue 16): the fetch step neither writes,
accepts nor deletes a file outside the model directory, whatever links were planted in it.

Against a real S3 server (versitygw on loopback), the CLI as a process.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.marker import IncompleteModel, verify_complete
from emotivoice_fetch.paths import staging_dir
from tests.fetch.conftest import run_fetch, upload
from tests.fetch.s3server import VersityGW

FILES = {"sub/file": b"model bytes", "sub/old": b"an old file", "top": b"top level"}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_a_directory_linked_out_of_the_cache_is_refused(gw: VersityGW, tmp_path: Path) -> None:
    model = upload(gw, FILES)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "cache" / "m"
    dest.mkdir(parents=True)
    (dest / "sub").symlink_to(outside)
    result = run_fetch(gw, model.uri, dest)
    assert result.rc == ExitCode.UNSAFE_CACHE, result.out
    assert f"{dest / 'sub'} is a symbolic link" in result.out
    assert _tree(outside) == {}
    with pytest.raises(IncompleteModel):
        verify_complete(dest)


def test_a_linked_staging_area_is_removed_not_written_through(
    gw: VersityGW, tmp_path: Path
) -> None:
    model = upload(gw, FILES)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "m"
    dest.mkdir()
    staging_dir(dest).symlink_to(outside)
    result = run_fetch(gw, model.uri, dest)
    assert result.rc == 0, result.out
    assert "removed the symbolic link" in result.out
    assert _tree(outside) == {}
    assert verify_complete(dest).sha256 == model.sha256()
    assert not staging_dir(dest).exists()


def test_a_file_linked_out_of_the_cache_is_replaced_not_overwritten(
    gw: VersityGW, tmp_path: Path
) -> None:
    model = upload(gw, FILES)
    secret = tmp_path / "secret"
    secret.write_bytes(b"not the model's")
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "top").symlink_to(secret)
    result = run_fetch(gw, model.uri, dest)
    assert result.rc == 0, result.out
    assert secret.read_bytes() == b"not the model's"
    assert not (dest / "top").is_symlink() and (dest / "top").read_bytes() == FILES["top"]


def test_a_directory_swapped_for_a_link_between_runs(gw: VersityGW, tmp_path: Path) -> None:
    """The same files behind a link (same inodes) are not the cache's, and the next version's
    clean-up of stale files does not delete them."""
    first = upload(gw, FILES)
    dest = tmp_path / "m"
    assert run_fetch(gw, first.uri, dest).rc == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(dest / "sub", outside / "sub")
    (dest / "sub").symlink_to(outside / "sub")
    with pytest.raises(IncompleteModel, match="changed or missing"):
        verify_complete(dest)

    second = upload(gw, {"top": b"the next version"})  # sub/ is no longer part of the model
    result = run_fetch(gw, second.uri, dest)
    assert result.rc == 0, result.out
    assert _tree(outside) == {"sub/file": FILES["sub/file"], "sub/old": FILES["sub/old"]}
    assert set(verify_complete(dest).files) == {"top"}
