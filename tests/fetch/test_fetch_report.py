"""The fetch step's report (its termination message) as the operator will read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotivoice_fetch import report


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
