"""The cost of a schedule (tuning/cost.py) through scripted sequences of passes at fixed instants:
pods turning Ready and leaving, the servers' counters rising, a pod restarting, the operator
restarting from status, overlapping windows. Each pass feeds the status the previous one wrote,
as the operator does; the counters are parsed from the exposition the real server's metrics
module produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

from emotivoice_operator.crd.schema import apply_defaults, spec_schema
from emotivoice_operator.crd.spec import WarmPoolSpec
from emotivoice_operator.preview.cost import cost_lines
from emotivoice_operator.preview.recorded import read_recorded
from emotivoice_operator.reconcile.memory import Memory
from emotivoice_operator.reconcile.report import Reporter
from emotivoice_operator.render import Owner
from emotivoice_operator.tuning import cost, counters
from emotivoice_operator.tuning.coldstarts import ColdStart
from emotivoice_operator.tuning.counters import ServerCounters
from emotivoice_operator.tuning.phases import StartSplit
from emotivoice_operator.windows import Window, parse_windows
from emotivoice_server.metrics import ModelThreadCollector
from emotivoice_server.metrics import create as server_metrics

DAY = "2030-01-07"  # a Monday


def at(hhmmss: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hhmmss}").replace(tzinfo=UTC)


def windows(*specs: dict[str, Any]) -> list[Window]:
    raw = {"timeZone": "UTC", "windows": list(specs)}
    pool = WarmPoolSpec.model_validate(apply_defaults(spec_schema()["properties"]["warmPool"], raw))
    return parse_windows(pool)


PEAK = {"name": "peak", "start": "09:00", "end": "12:00", "leadTime": "15m", "replicas": 3}


def pod(uid: str, ready: str | None, deleting: bool = False) -> dict[str, Any]:
    conditions = [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastTransitionTime": f"{DAY}T{ready or '00:00:00'}Z",
        }
    ]
    meta: dict[str, Any] = {"name": f"tts-{uid}", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = f"{DAY}T23:00:00Z"
    return {"metadata": meta, "status": {"conditions": conditions}}


class Passes:
    """The status as the operator's passes leave it, one pass at a time."""

    def __init__(self, ws: list[Window]) -> None:
        self.windows = ws
        self.status: dict[str, Any] | None = None
        self.added: list[dict[str, cost.Amounts]] = []

    def run(
        self,
        when: str,
        pods: list[dict[str, Any]],
        read: Mapping[str, ServerCounters] | None = None,
        starts: tuple[ColdStart, ...] = (),
        resumed: bool = False,
    ) -> dict[str, Any]:
        report = cost.account(
            self.windows, pods, self.status, at(when),
            counters=read, cold_starts=starts, resumed=resumed,
        )  # fmt: skip
        self.status = _merge(self.status or {}, report.status)
        self.added.append(report.added)
        return self.status

    def window(self, name: str = "peak") -> dict[str, Any]:
        assert self.status is not None
        return self.status["windows"][name]


def _merge(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch, as the API server applies the operator's status patch."""
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(old.get(key), Mapping):
            out[key] = _merge(old[key], value)
        else:
            out[key] = value
    return out


def exposition(busy: float, codes: Mapping[str, int]) -> str:
    """What GET /metrics of a server that spent ``busy`` model seconds answers, from the real
    server's metrics module."""
    m = server_metrics(lambda: None)
    m.registry.register(ModelThreadCollector(lambda: (busy, 7)))
    for code, n in codes.items():
        m.requests.labels(code=code).inc(n)
    return generate_latest(m.registry).decode()


def read(busy: float, requests: int) -> ServerCounters:
    return counters.parse(exposition(busy, {"200": requests}))


def test_counters_are_parsed_from_the_real_servers_exposition() -> None:
    text = exposition(12.5, {"200": 40, "503": 2, "truncated": 1})
    assert "emotivoice_model_busy_seconds_total 12.5" in text
    assert counters.parse(text) == ServerCounters(busy_seconds=12.5, requests=43.0)
    assert counters.parse("") == ServerCounters(0.0, 0.0)


def test_a_window_is_accounted_from_its_lead_to_its_end() -> None:
    p = Passes(windows(PEAK))
    a = pod("a", "07:00:00")
    first = p.run("08:00:00", [a])
    assert first["ready"] == 1 and first["windows"]["peak"]["occurrences"] == 0
    # Nothing warm since: the status is left as it is (no write while idle).
    assert p.run("08:30:00", [a]) == first
    # The lead begins: the counters' first read is a baseline (hours of old traffic in it).
    p.run("08:45:00", [a], {"a": read(100, 50)})
    assert p.window()["leadRequests"] == 0
    # b turns Ready: its pass reads (a minute since the last), b is new and counts from 0.
    b = pod("b", "08:46:00")
    p.run("08:46:00", [a, b], {"a": read(110, 55), "b": read(2, 1)})
    c = pod("c", "08:46:30")
    p.run("08:46:30", [a, b, c])  # 08:46-08:46:30: two pods
    # A poll a minute later; c does not answer.
    p.run("08:47:30", [a, b, c], {"a": read(130, 60), "b": read(5, 3)})
    assert p.window()["warmReplicaSeconds"] == 60 + 60 + 180
    assert p.window()["servedReplicaSeconds"] == 12 + 23
    assert p.window()["leadRequests"] == 6 + 7
    for minute in range(48, 60):  # the polls until the start, no traffic
        p.run(f"08:{minute}:30", [a, b, c], {"a": read(130, 60), "b": read(5, 3)})
    # The start: c answers now, but it was Ready at the last read and not read, so it is a
    # baseline only; the lead's requests end here.
    p.run("09:00:00", [a, b, c], {"a": read(160, 80), "b": read(15, 8), "c": read(2, 1)})
    assert p.window()["leadRequests"] == 13 + 25
    assert p.window()["servedReplicaSeconds"] == 35 + 40
    assert p.window()["warmReplicaSeconds"] == 300 + 750 * 3
    # Requests after the start are not the lead's.
    p.run("09:01:00", [a, b, c], {"a": read(190, 99), "b": read(16, 9), "c": read(3, 2)})
    peak = p.window()
    assert peak["leadRequests"] == 38
    assert peak["servedReplicaSeconds"] == 75 + 32
    assert peak["warmReplicaSeconds"] == 2550 + 3 * 60
    assert peak["occurrences"] == 1
    assert peak["last"] == {
        "start": f"{DAY}T09:00:00Z",
        "end": f"{DAY}T12:00:00Z",
        **{k: peak[k] for k in cost.FIGURES},
    }
    # The end, judged 5 s late by a pass that reads: the 5 s after it are nobody's.
    p.run("11:59:30", [a, b, c], {"a": read(200, 100), "b": read(16, 9), "c": read(3, 2)})
    before = p.window()["servedReplicaSeconds"]
    p.run("12:00:05", [a, b, c], {"a": read(235, 100), "b": read(16, 9), "c": read(3, 2)})
    assert p.window()["servedReplicaSeconds"] == pytest.approx(before + 35 * 30 / 35)
    assert p.window()["warmReplicaSeconds"] == 300 + 3 * (3 * 3600 + 750)
    # After it, passes change nothing but the Ready count when it changes.
    after = p.run("12:30:00", [a, b, c])
    assert p.run("13:00:00", [a, b, c]) == after
    assert p.run("13:05:00", [a])["ready"] == 1


def test_a_pod_that_leaves_counts_until_the_pass_that_sees_it_gone() -> None:
    p = Passes(windows(PEAK))
    a, b = pod("a", "08:00:00"), pod("b", "08:00:00")
    p.run("09:00:00", [a, b])
    p.run("09:10:00", [a, pod("b", "08:00:00", deleting=True)])  # leaving: not counted now
    p.run("09:20:00", [a])
    assert p.window()["warmReplicaSeconds"] == 2 * 600 + 600


def test_a_pod_restarted_in_place_counts_from_zero_and_its_cold_start_is_the_windows() -> None:
    p = Passes(windows(PEAK))
    a, b = pod("a", "08:00:00"), pod("b", "08:00:00")
    p.run("09:00:00", [a, b], {"a": read(10, 5), "b": read(50, 20)})
    p.run("09:00:10", [a, pod("b", None)])  # b's server container exited
    restart = StartSplit(
        pod="tts-b", created=at("09:00:10"), ready_at=at("09:00:30"), phases={"load": 20.0}
    )
    back = pod("b", "09:00:30")
    p.run("09:00:30", [a, back], starts=(ColdStart("tts-b", 20.0, restart, True, "b"),))
    p.run("09:01:00", [a, back], {"a": read(40, 9), "b": read(4, 2)})
    peak = p.window()
    assert peak["warmReplicaSeconds"] == 2 * 10 + 1 * 20 + 2 * 30
    assert peak["servedReplicaSeconds"] == 30 + 4  # b's counter fell: it counts from 0
    assert peak["coldStarts"] == 1 and peak["last"]["coldStarts"] == 1
    # A start outside every occurrence is no window's.
    outside = StartSplit(pod="tts-c", created=at("13:00:00"), ready_at=at("13:00:20"), phases={})
    p.run("13:00:20", [a, back], starts=(ColdStart("tts-c", 20.0, outside, False, "c"),))
    assert p.window()["coldStarts"] == 1


def test_an_operator_restart_states_the_span_it_was_away_and_keeps_the_totals() -> None:
    p = Passes(windows(PEAK))
    a, b = pod("a", "08:00:00"), pod("b", "08:00:00")
    p.run("09:00:00", [a, b], {"a": read(10, 5), "b": read(10, 5)})
    p.run("09:01:00", [a, b], {"a": read(20, 6), "b": read(20, 6)})
    kept = dict(p.window())
    # A new process: the status is all it has. 09:01-10:00 happened while none watched.
    p.run("10:00:00", [a], {"a": read(900, 300)}, resumed=True)
    peak = p.window()
    assert peak["unaccountedSeconds"] == 59 * 60
    assert peak["warmReplicaSeconds"] == kept["warmReplicaSeconds"] == 2 * 60
    assert peak["servedReplicaSeconds"] == kept["servedReplicaSeconds"] == 20
    assert p.status is not None and set(p.status["counters"]["pods"]) == {"a"}  # b is forgotten
    # From then on it accounts again, from the baseline it read on resuming.
    p.run("10:01:00", [a], {"a": read(915, 301)})
    assert p.window()["warmReplicaSeconds"] == 120 + 60
    assert p.window()["servedReplicaSeconds"] == 20 + 15
    assert p.window()["last"]["unaccountedSeconds"] == 59 * 60


def test_a_read_too_long_after_the_last_is_only_a_baseline() -> None:
    p = Passes(windows(PEAK))
    a = pod("a", "08:00:00")
    p.run("09:00:00", [a], {"a": read(10, 5)})
    p.run("09:10:00", [a], {"a": read(500, 80)})  # 10 min: the operator did not poll
    assert p.window()["servedReplicaSeconds"] == 0
    p.run("09:11:00", [a], {"a": read(530, 81)})
    assert p.window()["servedReplicaSeconds"] == 30


def test_overlapping_windows_give_each_instant_to_the_larger() -> None:
    ws = windows(
        PEAK,
        {"name": "rush", "start": "10:00", "end": "11:00", "leadTime": "15m", "replicas": 5},
        {"name": "small", "start": "10:30", "end": "10:40", "leadTime": "0m", "replicas": 1},
    )
    p = Passes(ws)
    a, b = pod("a", "08:00:00"), pod("b", "08:00:00")
    p.run("08:45:00", [a, b], {"a": read(0, 0)})
    p.run("09:45:00", [a, b], {"a": read(0, 0)})
    # rush's lead (09:45-10:00) is rush's, and so are its requests.
    p.run("09:46:00", [a, b], {"a": read(6, 10)})
    p.run("12:00:00", [a, b])
    assert p.window("peak")["warmReplicaSeconds"] == 2 * (3600 + 3600)  # 08:45-09:45, 11-12
    assert p.window("rush")["warmReplicaSeconds"] == 2 * 4500  # 09:45-11:00
    assert p.window("rush")["leadRequests"] == 10 and p.window("peak")["leadRequests"] == 0
    assert p.window("rush")["servedReplicaSeconds"] == 6
    assert p.window("small") == {
        "occurrences": 0,
        **dict.fromkeys(cost.FIGURES, 0),
    }  # inside rush throughout
    assert cost.pieces(ws, at("09:40:00"), at("09:50:00"))[1].lead


def test_a_window_removed_from_the_spec_is_removed_from_status() -> None:
    p = Passes(windows(PEAK, {"name": "late", "start": "20:00", "end": "21:00", "replicas": 1}))
    a = pod("a", "08:00:00")
    p.run("09:00:00", [a])
    p.run("09:10:00", [a])
    p.windows = windows(PEAK)
    p.run("09:20:00", [a])
    assert p.status is not None and set(p.status["windows"]) == {"peak"}
    assert p.window()["warmReplicaSeconds"] == 1200


def test_reads_are_due_while_warm_once_a_minute_and_at_every_edge() -> None:
    ws = windows(PEAK)

    def due(now: str, read_at: str | None) -> bool:
        previous = {"counters": {"readAt": f"{DAY}T{read_at}Z"}} if read_at else None
        return cost.read_due(ws, previous, at(now))

    assert not due("08:00:00", None)  # nothing warm
    assert due("08:45:00", None)  # the lead begins
    assert not due("08:45:30", "08:45:00")
    assert due("08:46:00", "08:45:00")
    assert due("09:00:00", "08:59:30")  # the start: the lead's requests end here
    assert due("12:00:05", "11:59:30")  # the end
    assert not due("12:10:00", "12:00:05")  # after it, nothing
    assert cost.next_read(ws, at("09:00:00")) == at("09:01:00")
    assert cost.next_read(ws, at("13:00:00")) is None


def test_the_windows_cost_counters_count_what_a_pass_added() -> None:
    owner = Owner(name="tts-metrics", namespace="cost", uid="u")
    reporter = Reporter(owner, lambda *_: None, Memory.from_status(None))
    labels = {"namespace": "cost", "name": "tts-metrics", "window": "peak"}

    def value(metric: str) -> float:
        return REGISTRY.get_sample_value(metric, labels) or 0.0

    before = value("emotivoice_window_warm_replica_seconds_total")
    reporter.cost({"peak": cost.Amounts(warm=120.0, lead_requests=3.0, cold_starts=1)})
    assert value("emotivoice_window_warm_replica_seconds_total") == before + 120.0
    assert value("emotivoice_window_lead_requests_total") == 3.0
    assert value("emotivoice_window_cold_starts_total") == 1.0
    assert value("emotivoice_window_served_replica_seconds_total") == 0.0


def test_the_first_pass_after_a_long_absence_accounts_every_occurrence_missed() -> None:
    p = Passes(windows(PEAK))
    a = pod("a", "08:00:00")
    p.run("08:00:00", [a])
    assert p.status is not None
    p.status["accountedAt"] = (at("08:00:00") - timedelta(days=3)).isoformat()
    p.run("08:00:00", [a], resumed=True)
    assert p.window()["unaccountedSeconds"] == 3 * (3 * 3600 + 900)
    assert p.window()["occurrences"] == 3


def test_preview_name_shows_each_windows_cost_and_a_verdict() -> None:
    status = {
        "cost": {
            "since": "2030-01-01T00:00:00Z",
            "windows": {
                "peak": {
                    "occurrences": 5,
                    "warmReplicaSeconds": 36000.0,
                    "servedReplicaSeconds": 4320.0,
                    "leadRequests": 340,
                    "coldStarts": 2,
                    "unaccountedSeconds": 0,
                },
                "small": {"occurrences": 0},
                "broken": "not a record",
            },
        }
    }
    recorded = read_recorded(status)
    assert recorded.cost is not None
    text = "\n".join(cost_lines(recorded.cost, windows(PEAK)))
    assert "peak                       5      10.0  1.2 (12%)           340           2" in text
    assert (
        "peak: lead of 15m met 340 requests that would have waited for a cold start; "
        "12% of warm replica-hours served traffic; 2 cold start(s) while open"
    ) in text
    assert "small: no warm span accounted yet" in text
    assert "broken" not in text
    assert read_recorded({}).cost is None


def test_a_counter_is_summed_over_its_labels_and_nothing_else() -> None:
    """One parser for both counters the operator reads itself (cost and the fallback's wake)."""
    from emotivoice_operator.exposition import counter_sum

    text = "\n".join([
        "# TYPE emotivoice_speech_requests_total counter",
        'emotivoice_speech_requests_total{code="200"} 41',
        'emotivoice_speech_requests_total{code="503"} 1.5e1',
        "emotivoice_speech_requests_total_created 1765000000",
        'emotivoice_speech_requests_total{code="500"} NaN',
        "emotivoice_model_busy_seconds_total 12.25",
    ])  # fmt: skip
    assert counter_sum(text, "emotivoice_speech_requests_total") == 56.0
    assert counter_sum(text, "emotivoice_model_busy_seconds_total") == 12.25
    assert counter_sum(text, "emotivoice_absent_total") == 0.0
