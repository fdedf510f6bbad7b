"""The fetch step's report (its termination message) as the operator will read it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from emotivoice_fetch import report
from tests.fetch.conftest import Model, run_fetch, upload
from tests.fetch.s3server import VersityGW


def test_a_report_round_trips_and_fits_a_termination_message(tmp_path: Path) -> None:
    sent = report.FetchReport(
        action="downloaded",
        files=4,
        bytes=1_000,
        downloaded_bytes=600,
        seconds=1.23456,
        phases={"list": 0.1, "download": 0.9},
    )
    report.write(tmp_path / "termination-log", sent)
    got = report.parse((tmp_path / "termination-log").read_text())
    assert got is not None and not got.cache_hit
    assert (got.action, got.downloaded_bytes, got.seconds) == ("downloaded", 600, 1.235)
    assert got.phases == {"list": 0.1, "download": 0.9}


def test_the_process_start_and_end_round_trip_to_the_millisecond() -> None:
    sent = report.FetchReport(
        "warm", 9, 160012345, 0, 0.113, phases={"list": 0.05}, started_at=1772442601.0234567,
        ended_at=1772442601.9312,
    )  # fmt: skip
    text = sent.to_json()
    got = report.parse(text)
    assert got is not None
    assert (got.started_at, got.ended_at) == (1772442601.023, 1772442601.931)
    # Two numbers more: the report stays far inside a termination message.
    assert len(text.encode()) < 300


def test_a_report_without_the_instants_still_reads_and_writes_none() -> None:
    """A report from a fetch step older than the instants (and one with a broken instant) still
    reads, with no instants; a report that has none writes no null fields."""
    old = (
        '{"action":"warm","bytes":160012345,"downloaded_bytes":0,"files":9,'
        '"phases":{"list":0.05,"verify":0.04},"remote":"compared","seconds":0.113,"v":1}'
    )
    got = report.parse(old)
    assert got is not None and got.action == "warm" and got.phases == {"list": 0.05, "verify": 0.04}
    assert got.started_at is None and got.ended_at is None
    assert got.to_json() == old
    broken = report.parse(old.replace('"v":1', '"v":1,"started_at":"soon","ended_at":-1'))
    assert broken is not None and broken.started_at is None and broken.ended_at is None


@pytest.mark.parametrize(
    "message",
    ["", "emotivoice-fetch: error: access denied", "[1]", '{"v": 1, "action": "guessed"}'],
)
def test_what_is_not_a_report_reads_as_none(message: str) -> None:
    assert report.parse(message) is None


def test_an_oversized_report_is_refused_not_truncated() -> None:
    big = report.FetchReport("warm", 1, 1, 0, 0.0, phases={f"p{i}": 1.0 for i in range(400)})
    with pytest.raises(ValueError, match="over 4096"):
        big.to_json()


def test_no_termination_log_outside_a_pod_is_not_an_error(tmp_path: Path) -> None:
    report.write(tmp_path / "absent" / "termination-log", report.FetchReport("warm", 1, 1, 0, 0))
    assert not (tmp_path / "absent").exists()


def run_with_report(
    gw: VersityGW, model: Model, dest: Path, path: Path, *extra: str, **kw: Any
) -> report.FetchReport:
    result = run_fetch(gw, model.uri, dest, "--report", str(path), *extra, **kw)
    assert result.rc == 0, result.out
    got = report.parse(path.read_text())
    assert got is not None, path.read_text()
    return got


def test_a_real_cli_run_writes_the_report_the_operator_reads(gw: VersityGW, tmp_path: Path) -> None:
    files = {"config.json": b"{}", "ckpt/g.pth": os.urandom(2_000_000)}
    model = upload(gw, files)
    dest = tmp_path / "m"
    path = tmp_path / "termination-log"
    hook = ("--after-verify", "tests.fetch.hooks:derive")

    before = time.time()
    cold = run_with_report(gw, model, dest, path, *hook)
    assert (cold.action, cold.remote, cold.cache_hit) == ("downloaded", "compared", False)
    assert (cold.files, cold.bytes, cold.downloaded_bytes) == (2, 2_000_002, 2_000_002)
    assert {"list", "download", "verify", "convert"} <= set(cold.phases), cold.phases
    assert all(v >= 0 for v in cold.phases.values())
    # The phases are parts of the run, not more than it (rounding aside).
    assert sum(cold.phases.values()) <= cold.seconds + 0.01, cold
    # The process's own start (the kernel's, 10 ms ticks) and end, on the wall clock: inside
    # the run, and no shorter than the work it timed.
    assert cold.started_at is not None and cold.ended_at is not None
    assert before - 0.02 <= cold.started_at <= cold.ended_at <= time.time(), (before, cold)
    assert cold.ended_at - cold.started_at >= cold.seconds - 0.01, cold

    warm = run_with_report(gw, model, dest, path, *hook)
    assert (warm.action, warm.remote, warm.cache_hit) == ("warm", "compared", True)
    assert warm.downloaded_bytes == 0 and warm.bytes == cold.bytes
    assert "download" not in warm.phases and "convert" not in warm.phases
    assert {"verify", "list"} <= set(warm.phases), warm.phases

    pinned = {"EMOTIVOICE_EXPECTED_SHA256": json.dumps(model.sha256())}
    offline = run_with_report(
        gw, model, dest, path, *hook, env=pinned, endpoint="http://127.0.0.1:9"
    )
    assert (offline.action, offline.remote) == ("warm", "not-needed")
    assert "list" not in offline.phases, "nothing was asked of the store"
