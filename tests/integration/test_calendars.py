"""Calendars on a real control plane: an EmotiVoiceCalendar (cluster-scoped) whose entry is today
in the pool's zone holds the floor at replicas.min through a window's time, and one created,
changed or deleted after the service brings its pass at once.

The operator runs as the chart's ServiceAccount watching only the tests' namespaces (kopf
globs, ``--namespace``): kopf still serves the cluster-scoped calendars cluster-wide, which this
proves on the real API server. "At once" means well inside the timer's horizon (20 periods of
3 s): the window below ends hours away, so without the calendars index nothing brings the pass
sooner (the service's own watch sees no change).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support.cluster import Cluster
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import OperatorProcess, running_operator, wait_for

pytestmark = pytest.mark.cluster

# Well inside the horizon (60 s at the tests' 3 s timer), with room for a loaded machine.
PROMPTLY_S = 25


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


def _zone_near_noon() -> str:
    """A fixed-offset zone whose wall clock now reads about noon, so the window below (an hour
    ago to two hours ahead) starts and ends on that zone's today whatever the hour in UTC."""
    offset = 12 - datetime.now(UTC).hour  # -11 .. +12 hours east of UTC
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/ names invert the sign


def _service(name: str, calendar: str, zone: str) -> dict[str, Any]:
    """A window warm from an hour ago to two hours ahead (in ``zone``), 2 replicas over a min
    of 0."""
    now = datetime.now(ZoneInfo(zone))
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    body = valid_resource(name)
    body["spec"]["replicas"] = {"min": 0, "max": 3}
    body["spec"]["model"]["cache"] = {"scope": "Ephemeral"}
    body["spec"]["warmPool"] = {
        "timeZone": zone,
        "calendars": [calendar],
        "windows": [{"name": "now", "start": f"{start:%H:%M}", "end": f"{end:%H:%M}",
                     "leadTime": "1m", "replicas": 2}],
    }  # fmt: skip
    return body


def _calendar(name: str, *dates: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "tts.emotivoice.io/v1alpha1",
        "kind": "EmotiVoiceCalendar",
        "metadata": {"name": name},
        "spec": {"dates": list(dates)},
    }


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", namespace).get("status") or {}


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def test_a_calendar_today_holds_replicas_min_and_its_changes_bring_passes_at_once(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    calendar = f"holidays-{uuid.uuid4().hex[:6]}"
    zone = _zone_near_noon()
    today = datetime.now(ZoneInfo(zone)).date()
    try:
        # The service first: its calendar does not exist yet, so the window applies and status
        # says which field names the missing calendar and how to find the real ones.
        cluster.apply(_service("tts-cal", calendar, zone), namespace=namespace)
        status = wait_for(
            lambda: (s := _status(cluster, namespace, "tts-cal")).get("warmFloor") == 2 and s,
            timeout=90, what="the window's floor while the calendar is missing",
        )  # fmt: skip
        found = _condition(status, "CalendarsFound")
        assert found["status"] == "False"
        assert "spec.warmPool.calendars[0]" in found["message"]
        assert "kubectl get emotivoicecalendars" in found["message"]
        assert status["calendar"]["missing"] == [calendar]
        events = cluster.get_json("events", "-n", namespace, "--field-selector",
                                  "involvedObject.name=tts-cal")["items"]  # fmt: skip
        assert any(e["reason"] == "CalendarMissing" for e in events)

        # The calendar appears with today as a holiday: the floor falls to replicas.min (0)
        # during the window's time, promptly, and status shows the entry for the jobs.
        cluster.apply(_calendar(calendar, {"date": today.isoformat(), "name": "Test Day"}))
        status = wait_for(
            lambda: (s := _status(cluster, namespace, "tts-cal")).get("warmFloor") == 0 and s,
            timeout=PROMPTLY_S, interval=0.5, what="the floor at replicas.min on the holiday",
        )  # fmt: skip
        assert status["calendar"]["calendars"] == [calendar]
        assert status["calendar"]["upcoming"] == [
            {"date": today.isoformat(), "name": "Test Day", "windows": [],
             "source": f"calendar {calendar}"}
        ]  # fmt: skip
        assert _condition(status, "CalendarsFound")["status"] == "True"
        assert status["activeWindow"] == ""

        # Changed to name the window: it applies again, promptly.
        cluster.apply(_calendar(calendar, {"date": today.isoformat(), "windows": ["now"]}))
        wait_for(lambda: _status(cluster, namespace, "tts-cal").get("warmFloor") == 2,
                 timeout=PROMPTLY_S, interval=0.5, what="the window back on its named date")  # fmt: skip
        cluster.apply(_calendar(calendar, {"date": today.isoformat(), "name": "Again"}))
        wait_for(lambda: _status(cluster, namespace, "tts-cal").get("warmFloor") == 0,
                 timeout=PROMPTLY_S, interval=0.5, what="the holiday again")  # fmt: skip

        # Deleted: missing again, the window applies (warm is the safe side).
        cluster.kubectl("delete", "emotivoicecalendar", calendar)
        wait_for(lambda: _status(cluster, namespace, "tts-cal").get("warmFloor") == 2,
                 timeout=PROMPTLY_S, interval=0.5, what="the window after the calendar went")  # fmt: skip
    finally:
        cluster.kubectl("delete", "emotivoicecalendar", calendar, "--ignore-not-found")


def test_the_api_server_refuses_bad_dates_naming_the_field(cluster: Cluster) -> None:
    """The calendar's schema is the service's date entry: a date that is not one (30 February,
    caught by format: date) or outside 2000-2099 is refused naming the field."""
    from tests.support.operator_process import install_crd

    install_crd(cluster)
    for date, says in (("2027-02-30", "dates[0].date"), ("2100-01-01", "dates[0].date")):
        result = cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-",
            input=json.dumps(_calendar(f"bad-{uuid.uuid4().hex[:6]}", {"date": date})),
            check=False,
        )  # fmt: skip
        assert result.returncode != 0, f"{date} was accepted"
        assert says in result.stderr, result.stderr
