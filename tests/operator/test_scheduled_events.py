"""The scheduler's Scheduled Events as the reconciler reads them (reconcile/scheduled.py): the
instants, the one list a pass makes and when it makes none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from dateutil import tz
from kubernetes import client
from kubernetes.client.rest import ApiException

from emotivoice_operator.reconcile.scheduled import SELECTOR, ScheduledReader, scheduled_times
from emotivoice_operator.tuning.coldstarts import PendingStart

WHEN = datetime(2026, 3, 2, 9, 10, 0, 904512, tzinfo=UTC)


def event(pod: str, uid: str | None, when: datetime | None) -> client.CoreV1Event:
    """A Scheduled Event as the client returns it: eventTime set, first/lastTimestamp null."""
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=f"{pod}.1", namespace="voice"),
        involved_object=client.V1ObjectReference(kind="Pod", name=pod, uid=uid),
        reason="Scheduled",
        event_time=when,
    )


def test_each_pods_event_time_in_utc_by_uid_or_name() -> None:
    times = scheduled_times(
        [
            # The client parses "...Z" to tzutc, or to tzlocal where the local zone is UTC;
            # any aware datetime is the same instant.
            event("a", "uid-a", WHEN.astimezone(tz.tzutc())),
            event("b", "uid-b", WHEN.astimezone(tz.tzlocal())),
            event("c", None, WHEN.astimezone(timezone(timedelta(hours=2)))),
            event("d", "uid-d", WHEN.replace(tzinfo=None)),  # naive: UTC
            event("e", "uid-e", None),  # a core/v1 recorder's Event: no eventTime
        ]
    )
    assert times == {"uid-a": WHEN, "uid-b": WHEN, "c": WHEN, "uid-d": WHEN}
    assert all(t.tzinfo == UTC for t in times.values())


def test_of_several_events_for_one_pod_the_latest_counts() -> None:
    later = WHEN + timedelta(seconds=3)
    assert scheduled_times([event("a", "u", later), event("a", "u", WHEN)]) == {"u": later}


class FakeCore:
    def __init__(self, items: list[client.CoreV1Event], error: int | None = None) -> None:
        self.items = items
        self.error = error
        self.calls: list[tuple[str, str]] = []

    def list_namespaced_event(self, namespace: str, field_selector: str) -> Any:
        self.calls.append((namespace, field_selector))
        if self.error:
            raise ApiException(status=self.error, reason="Forbidden")
        return client.CoreV1EventList(items=self.items)


def reader(core: FakeCore) -> ScheduledReader:
    out = ScheduledReader(client.ApiClient())
    out.core = core  # type: ignore[assignment]
    return out


def pending(name: str, since_restart: bool = False) -> PendingStart:
    return PendingStart({"metadata": {"name": name, "uid": f"uid-{name}"}}, since_restart)


def test_one_list_only_in_a_pass_with_a_new_pods_start() -> None:
    core = FakeCore([event("a", "uid-a", WHEN)])
    assert reader(core).read("voice", []) == {}
    # A server container restarted in place was not scheduled again: nothing to read.
    assert reader(core).read("voice", [pending("a", since_restart=True)]) == {}
    assert core.calls == []
    assert reader(core).read("voice", [pending("a"), pending("b")]) == {"uid-a": WHEN}
    assert core.calls == [("voice", SELECTOR)]


def test_a_refused_list_leaves_the_stamps_in_force() -> None:
    core = FakeCore([], error=403)
    assert reader(core).read("voice", [pending("a")]) == {}
    assert len(core.calls) == 1
