"""The operator's watch instants of a pod (controller/seen.py) and how a start's ends take them
(tuning/phases.split): fixed clocks, pod bodies as the API returns them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from emotivoice_operator.controller.seen import SeenClock
from emotivoice_operator.tuning.phases import SEEN_FIELD, split


def _pod(uid: str = "u1", ready: bool = False) -> dict[str, Any]:
    conditions = [{"type": "PodScheduled", "status": "True",
                   "lastTransitionTime": "2026-03-02T09:10:00Z"}]  # fmt: skip
    if ready:
        conditions.append(
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-03-02T09:10:04Z"}
        )
    return {
        "metadata": {"name": "tts-0", "uid": uid, "creationTimestamp": "2026-03-02T09:10:00Z"},
        "status": {"conditions": conditions},
    }


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_stamps_a_pods_first_event_and_its_turn_to_ready() -> None:
    clock = _Clock()
    seen = SeenClock(clock)
    clock.now = _epoch("2026-03-02T09:10:00.950")
    assert seen.stamp(_pod())[SEEN_FIELD] == {"first": clock.now, "ready": None}
    first = clock.now
    clock.now = _epoch("2026-03-02T09:10:04.700")
    assert seen.stamp(_pod(ready=True))[SEEN_FIELD] == {"first": first, "ready": clock.now}
    turned = clock.now
    clock.now += 30  # a later event of the Ready pod keeps the instant it turned
    assert seen.stamp(_pod(ready=True))[SEEN_FIELD]["ready"] == turned
    # Ready already at the first event this operator saw (it started later): no instant.
    assert seen.stamp(_pod("u2", ready=True))[SEEN_FIELD]["ready"] is None


def test_unready_then_ready_again_is_a_new_turn() -> None:
    clock = _Clock()
    seen = SeenClock(clock)
    seen.stamp(_pod())
    clock.now = 5.0
    seen.stamp(_pod(ready=True))
    clock.now = 9.0
    assert seen.stamp(_pod())[SEEN_FIELD]["ready"] is None
    clock.now = 12.0
    assert seen.stamp(_pod(ready=True))[SEEN_FIELD]["ready"] == 12.0


def test_it_remembers_a_bounded_number_of_pods_oldest_out() -> None:
    seen = SeenClock(_Clock(), capacity=2)
    for uid in ("a", "b", "c"):
        seen.stamp(_pod(uid))
    assert list(seen._pods) == ["b", "c"]


def test_a_start_runs_between_the_watch_instants_when_they_match_the_stamps() -> None:
    pod = _pod(ready=True)
    plain = split(copy.deepcopy(pod))
    assert plain is not None and plain.seconds == 4.0
    pod[SEEN_FIELD] = {
        "first": _epoch("2026-03-02T09:10:00.310"),
        "ready": _epoch("2026-03-02T09:10:04.720"),
    }
    watched = split(pod)
    assert watched is not None and round(watched.seconds, 3) == 4.41
    assert sum(watched.phases.values()) == round(watched.seconds, 3)
    # Seen more than half a second past the stamp's second (a relist, a busy operator): the
    # stamp, not a creation that late.
    pod[SEEN_FIELD] = {"first": _epoch("2026-03-02T09:10:01.600"), "ready": None}
    relisted = split(pod)
    assert relisted is not None and relisted.seconds == 4.0
    # An operator that started later saw the pod first long after its creation: the stamp.
    pod[SEEN_FIELD] = {"first": _epoch("2026-03-02T09:30:00"), "ready": None}
    late = split(pod)
    assert late is not None and late.seconds == 4.0
