"""``recommend`` against a real Prometheus backfilled with five weeks of generated traffic
(tests/support/traffic_history.py): the issue's targets, the holiday, and the bad inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import yaml

from emotivoice_operator.cli_recommend import read_history
from emotivoice_operator.main import main
from emotivoice_operator.recommend.floor import operator_windows
from emotivoice_operator.recommend.history import MINUTES_PER_WEEK
from emotivoice_operator.recommend.recommendation import Options, Service, recommend
from emotivoice_operator.windows import warm_floor
from tests.support import traffic_history as th

pytestmark = pytest.mark.slow

SELECTOR = f'namespace="{th.NAMESPACE}",service="{th.SERVICE}"'
HOLIDAY_ENTRY = {"date": th.HOLIDAY.isoformat(), "name": "Allerheiligen"}


def _history(prometheus, weeks=5):
    end_s = int(th.end_instant().timestamp())
    return read_history(prometheus.url, SELECTOR, end_s, weeks, th.ZONE)


def _on_holiday(history, floor) -> np.ndarray:
    return floor[history.grid.ordinal == th.HOLIDAY.toordinal()]


def test_four_weeks_proposed_cover_the_fifth_at_little_more_than_its_schedule(
    prometheus, tmp_path, capsys
):
    history = _history(prometheus)
    assert history.weeks == 5
    service = Service(th.manifest(dates=[HOLIDAY_ENTRY])["spec"])
    rec = recommend(history, service, Options())
    bt = rec.backtest
    assert bt is not None and rec.backtest_today is not None
    # The targets: at least 99% of the held-out week's requests met enough warm replicas, for at
    # most 1.25x the generating schedule's own warm replica-hours (its floor, holiday included).
    assert bt.score.coverage >= 0.99
    ratio = bt.score.replica_hours / rec.backtest_today.replica_hours
    assert ratio <= 1.25
    print(f"held-out coverage {bt.score.coverage:.4f}, replica-hours ratio {ratio:.3f}")
    # The holiday (in the spec's dates, after the training weeks): no window on it.
    held = history.window(4 * MINUTES_PER_WEEK, 5 * MINUTES_PER_WEEK)
    assert _on_holiday(held, bt.floor).size > 0
    assert (_on_holiday(held, bt.floor) == 1).all()
    assert {"date": th.HOLIDAY.isoformat(), "name": "Allerheiligen"} in bt.pool["dates"]
    _operator_holds_no_window_on_the_holiday(bt.pool, tmp_path, capsys)


def _operator_holds_no_window_on_the_holiday(pool, tmp_path, capsys) -> None:
    """The proposed pool as the operator would run it: its floor (``warm_floor``) on the
    holiday is replicas.min all day, no pre-warm job on it makes a request, and the preview
    shows the date with no window."""
    spec = {**th.manifest()["spec"], "warmPool": pool}
    min_r, _, windows, _ = operator_windows(spec, pool, None)
    day = datetime.combine(th.HOLIDAY, datetime.min.time(), tzinfo=th.ZONE)
    for minute in range(0, 1440, 5):
        at = (day + timedelta(minutes=minute)).astimezone(UTC)
        assert warm_floor(min_r, windows, at, {}) == min_r, at
    manifest = tmp_path / "proposed.yaml"
    manifest.write_text(yaml.safe_dump({**th.manifest(), "spec": spec}))
    capsys.readouterr()
    rc = main(["preview", "-f", str(manifest), "--start", f"{th.HOLIDAY}T00:00", "--days", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"{th.HOLIDAY}  " in out and "no window applies" in out, out
    floor_lines = out.split("Warm floor")[1].split("\n\n")[0].splitlines()[1:]
    assert floor_lines and all(line.split()[-1] == str(min_r) for line in floor_lines), out


def test_refused_requests_count_as_demand_in_the_capped_week(prometheus, traffic):
    history = _history(prometheus)
    offset = (history.start_s - traffic.start_s) // 60
    week = slice(th.CAPPED_WEEK * MINUTES_PER_WEEK, (th.CAPPED_WEEK + 1) * MINUTES_PER_WEEK)
    generated = traffic.demand[offset:][week]
    served = traffic.served[offset:][week]
    assert served.sum() < 0.95 * generated.sum()  # the cap refused a share
    got = np.nan_to_num(history.demand[week])
    assert abs(got.sum() / generated.sum() - 1) < 0.02
    assert history.seconds_per_request == pytest.approx(th.SECONDS_PER_REQUEST, rel=0.01)


def test_a_holiday_given_on_the_command_line_gets_no_window(prometheus):
    history = _history(prometheus)
    service = Service(th.manifest()["spec"])
    rec = recommend(history, service, Options(holidays=(th.HOLIDAY,)))
    held = history.window(4 * MINUTES_PER_WEEK, 5 * MINUTES_PER_WEEK)
    assert (_on_holiday(held, rec.backtest.floor) == 1).all()
    assert {"date": th.HOLIDAY.isoformat(), "name": "holiday"} in rec.backtest.pool["dates"]
    assert rec.proposal.skipped[th.HOLIDAY] == "--holiday"
    # In the history read for the full proposal, so it shaped nothing and is not carried.
    assert "dates" not in rec.proposal.pool


def test_cli_prints_a_pool_the_operator_accepts_and_flags_the_holiday(prometheus, tmp_path, capsys):
    manifest = tmp_path / "tts.yaml"
    manifest.write_text(yaml.safe_dump(th.manifest()))
    plot = tmp_path / "week.png"
    rc = main(
        ["recommend", "-f", str(manifest), "--prometheus", prometheus.url, "--weeks", "5",
         "--end", th.end_instant().isoformat(), "--plot", str(plot)]
    )  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert plot.stat().st_size > 10_000
    assert f"left out {th.HOLIDAY.isoformat()} (Mon): looks like a holiday; add it" in out.out
    pool = yaml.safe_load(out.out)["warmPool"]
    assert 1 <= len(pool["windows"]) <= 20
    _, _, windows, _ = operator_windows(th.manifest()["spec"], pool, None)
    assert {w.name for w in windows} == {w["name"] for w in pool["windows"]}
    for label in ("proposed", "today's spec", "flat at the peak", "backtest"):
        assert label in out.out


def _cli(*args: str) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["recommend", *args])
    return rc, err.getvalue()


def test_a_selector_that_matches_nothing_is_named(prometheus, tmp_path):
    manifest = tmp_path / "tts.yaml"
    manifest.write_text(yaml.safe_dump(th.manifest()))
    rc, err = _cli("-f", str(manifest), "--prometheus", prometheus.url,
                   "--end", th.end_instant().isoformat(), "--selector", 'service="nope"')  # fmt: skip
    assert rc == 1
    assert err.count("\n") == 1
    assert '{service="nope"}' in err and "--selector" in err


def test_too_little_history_says_how_much_there_is(prometheus, tmp_path):
    manifest = tmp_path / "tts.yaml"
    manifest.write_text(yaml.safe_dump(th.manifest()))
    end = th.START.astimezone(UTC) + timedelta(days=10)
    rc, err = _cli("-f", str(manifest), "--prometheus", prometheus.url, "--end", end.isoformat())
    assert rc == 1
    assert "too little history" in err and "10.0 days" in err and "at least 2 whole weeks" in err


def test_an_unreachable_prometheus_is_named(tmp_path):
    manifest = tmp_path / "tts.yaml"
    manifest.write_text(yaml.safe_dump(th.manifest()))
    rc, err = _cli("-f", str(manifest), "--prometheus", "http://127.0.0.1:9",
                   "--end", datetime(2027, 11, 8, tzinfo=UTC).isoformat())  # fmt: skip
    assert rc == 1
    assert err.startswith("recommend: cannot reach Prometheus at http://127.0.0.1:9")
