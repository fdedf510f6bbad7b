"""Listings that contradict the store (found by a re-probe of the fetch step with hostile
stores): each ends with one clear error line and its exit code, never a traceback, and nothing is
marked complete. The listing is rewritten by a proxy in front of a real versitygw
(tests/fetch/lying_store.py says why)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emotivoice_fetch.errors import ExitCode
from emotivoice_fetch.paths import marker_path
from tests.fetch.conftest import run_fetch, upload
from tests.fetch.lying_store import LyingStore
from tests.fetch.s3server import VersityGW


@pytest.fixture
def lying() -> Iterator[list[LyingStore]]:
    started: list[LyingStore] = []
    try:
        yield started
    finally:
        for store in started:
            store.stop()


def test_a_file_cut_to_a_smaller_listed_size_is_refused(
    gw: VersityGW, tmp_path: Path, lying: list[LyingStore]
) -> None:
    """Neither a manifest nor pins: the size is all the file is checked by. The listing says 5
    bytes, the GET's Content-Range says the object has 11: refused, not accepted as 5 bytes."""
    model = upload(gw, {"config.json": b"hello world"})
    store = LyingStore(gw.port, lambda xml: xml.replace(b"<Size>11</Size>", b"<Size>5</Size>"))
    lying.append(store.start())
    dest = tmp_path / "model"
    result = run_fetch(gw, model.uri, dest, endpoint=store.endpoint)
    assert store.listings_rewritten >= 1
    assert result.rc == ExitCode.SOURCE_CHANGED, result.out
    assert "the listing says 5 bytes" in result.out and "has 11" in result.out, result.out
    assert "Traceback" not in result.out
    assert not marker_path(dest).exists()
    assert not (dest / "config.json").exists()


def test_the_same_file_listed_truthfully_is_fetched(
    gw: VersityGW, tmp_path: Path, lying: list[LyingStore]
) -> None:
    """The proxy itself changes nothing when it does not lie (so the test above fails for the
    lie, not for the proxy)."""
    model = upload(gw, {"config.json": b"hello world"})
    store = LyingStore(gw.port, lambda xml: xml)
    lying.append(store.start())
    dest = tmp_path / "model"
    result = run_fetch(gw, model.uri, dest, endpoint=store.endpoint)
    assert result.rc == 0, result.out
    assert (dest / "config.json").read_bytes() == b"hello world"


def test_a_key_deeper_than_the_path_limit_is_refused_by_name(
    gw: VersityGW, tmp_path: Path, lying: list[LyingStore]
) -> None:
    """A key 20 components deep of 250 characters each (5,000 bytes: more than S3's 1,024 and
    the system's 4,096-byte path limit) once crashed the journal read with "File name too
    long"; it is refused before anything is written, naming the limit."""
    model = upload(gw, {"config.json": b"{}"})
    deep = "/".join(["d" * 250] * 20)
    store = LyingStore(
        gw.port,
        lambda xml: xml.replace(b"/config.json</Key>", f"/{deep}</Key>".encode()),
    )
    lying.append(store.start())
    dest = tmp_path / "model"
    result = run_fetch(gw, model.uri, dest, endpoint=store.endpoint)
    assert result.rc == ExitCode.USAGE, result.out
    assert "more than the 1024 an S3 key may have" in result.out, result.out
    assert "Traceback" not in result.out
    assert not marker_path(dest).exists()


def test_a_component_longer_than_a_file_name_is_refused_by_name(
    gw: VersityGW, tmp_path: Path, lying: list[LyingStore]
) -> None:
    model = upload(gw, {"config.json": b"{}"})
    store = LyingStore(
        gw.port, lambda xml: xml.replace(b"/config.json</Key>", f"/{'n' * 300}</Key>".encode())
    )
    lying.append(store.start())
    result = run_fetch(gw, model.uri, tmp_path / "model", endpoint=store.endpoint)
    assert result.rc == ExitCode.USAGE, result.out
    assert "300 bytes long; a file name has at most 255" in result.out, result.out
