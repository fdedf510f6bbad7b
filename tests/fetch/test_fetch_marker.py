"""The completion marker: cheap to check, and never fooled by a changed file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from emotivoice_fetch import hook
from emotivoice_fetch.marker import (
    CompleteModel,
    IncompleteModel,
    record_for,
    verify_complete,
    write_marker,
)
from emotivoice_fetch.paths import marker_path


def make_model(dest: Path) -> CompleteModel:
    files = {"config.json": b'{"a": 1}', "ckpt/g_00140000": os.urandom(4096)}
    records = {}
    for rel, data in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        records[rel] = record_for(path, hashlib.sha256(data).hexdigest(), etag='"e"')
    model = CompleteModel(dest, "s3://b/m/", records)
    write_marker(model)
    return model


def test_verified_model_round_trips(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    got = verify_complete(tmp_path)
    assert got.files == model.files
    assert got.sha256["config.json"] == hashlib.sha256(b'{"a": 1}').hexdigest()
    assert got.source == "s3://b/m/"


def test_no_marker_is_incomplete(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(IncompleteModel, match="no completion marker"):
        verify_complete(tmp_path)


def forbid_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any sha256 (or other hashlib digest) raises: a check that hashed a file
    fails the test instead of passing slowly."""

    def hashed(*args: object, **kwargs: object) -> None:
        raise AssertionError("verify_complete hashed a file")

    for name in ("sha256", "new", "file_digest"):
        monkeypatch.setattr(hashlib, name, hashed)
    monkeypatch.setattr(hook, "sha256_file", hashed)


def test_an_unchanged_model_is_verified_without_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(tmp_path)
    forbid_hashing(monkeypatch)
    assert verify_complete(tmp_path).files == model.files


@pytest.mark.parametrize("change", ["truncate", "replace", "rewrite", "delete"])
def test_changed_file_is_detected_without_hashing(
    tmp_path: Path, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_model(tmp_path)
    path = tmp_path / "ckpt/g_00140000"
    data = path.read_bytes()
    st = path.stat()
    if change == "truncate":
        os.truncate(path, 100)
    elif change == "replace":  # same size, same mtime, a new inode
        tmp = tmp_path / "new"
        tmp.write_bytes(data)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)
    elif change == "rewrite":  # same size, same inode, new content and mtime
        with open(path, "r+b") as f:
            f.write(b"\0" * 16)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    else:
        path.unlink()
    forbid_hashing(monkeypatch)
    with pytest.raises(IncompleteModel, match="ckpt/g_00140000 changed or missing"):
        verify_complete(tmp_path)


@pytest.mark.parametrize(
    "doc",
    [b"{", b'{"format": 99, "files": {}}', b'{"format": 1, "files": {"../x": {}}}'],
)
def test_bad_marker_is_incomplete(tmp_path: Path, doc: bytes) -> None:
    make_model(tmp_path)
    marker_path(tmp_path).write_bytes(doc)
    with pytest.raises(IncompleteModel):
        verify_complete(tmp_path)


def test_marker_write_is_deterministic(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    first = marker_path(tmp_path).read_bytes()
    write_marker(model)
    assert marker_path(tmp_path).read_bytes() == first
    assert list(json.loads(first)["files"]) == sorted(model.files)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
