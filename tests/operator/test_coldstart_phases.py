"""Cold starts by phase, from pod objects in the shape the kubelet (v1.34) writes them.

``pods/*.json`` hold one server pod each and, where the server could be asked, its ``/ready``
answer: an empty cache on a node that pulled the image, a warm cache, a replica that waited for
another's download with the image already present, a fetch step that failed once and was
restarted, and a server container restarted in place after the pod had been Ready.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emotivoice_operator.tuning import coldstarts
from emotivoice_operator.tuning.phases import PHASES, split

PODS = Path(__file__).with_name("pods")


def recorded(name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    body = json.loads((PODS / f"{name}.json").read_text())
    return body["pod"], body["ready"]


def total(pod: dict[str, Any]) -> float:
    created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"])
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return (datetime.fromisoformat(ready["lastTransitionTime"]) - created).total_seconds()


@pytest.mark.parametrize(
    "name", ["cold_cache", "warm_cache", "image_present_waited", "fetch_restarted"]
)
def test_phases_add_up_to_created_to_ready(name: str) -> None:
    pod, ready = recorded(name)
    parts = split(pod, ready)
    assert parts is not None
    assert sum(parts.phases.values()) == pytest.approx(total(pod), abs=0.01)
    assert parts.seconds == total(pod)
    assert all(v >= 0 for v in parts.phases.values())
    assert list(parts.phases) == [p for p in PHASES if p in parts.phases]


def test_cold_cache_start_shows_the_pull_the_download_and_the_servers_own_phases() -> None:
    pod, ready = recorded("cold_cache")
    parts = split(pod, ready)
    assert parts is not None and parts.source == "server" and parts.cache == "downloaded"
    assert parts.downloaded_bytes == 160012345
    assert parts.fetch_phases == {"list": 0.08, "download": 2.1, "verify": 0.9, "convert": 0.31}
    # 08:44:00 created, :01 scheduled, 08:45:10 fetch starts (69 s of image pull), 4 s fetch,
    # 1 s to the server's start (its container's creation: import's); the server's 7.95 s:
    # 3.05 import, 1.02 load, 3.88 warm-up; Ready at :24, 1.05 s after the server's /ready.
    assert parts.phases == {
        "scheduling": 1.0, "image": 69.0, "fetch": 4.0,
        "import": 1.0 + 3.05, "load": 1.02, "warmup": 3.88, "probe": 1.05,
    }  # fmt: skip


def test_warm_cache_start_is_a_hit_with_no_download() -> None:
    pod, ready = recorded("warm_cache")
    parts = split(pod, ready)
    assert parts is not None and parts.cache == "warm" and parts.downloaded_bytes == 0
    assert parts.phases["fetch"] == 1.0 and parts.phases["image"] == 1.0
    assert parts.phases["scheduling"] == 0.0


def test_without_the_servers_answer_the_server_is_one_phase() -> None:
    pod, _ = recorded("image_present_waited")
    parts = split(pod, None)
    assert parts is not None and parts.source == "pod" and parts.cache == "waited"
    # Waiting for a volume (30 s), then the image was already there: one second to the fetch;
    # without the server's answer, its container's creation is part of its one phase.
    assert parts.phases == {"scheduling": 30.0, "image": 1.0, "fetch": 9.0, "server": 9.0}


def test_a_failed_fetch_and_its_back_off_are_retry_time() -> None:
    pod, ready = recorded("fetch_restarted")
    parts = split(pod, ready)
    assert parts is not None and parts.cache == "downloaded"
    # First attempt 10:00:02, failed; the successful one started at :13.
    assert parts.phases["image"] == 2.0
    assert parts.phases["retry"] == 11.0
    assert parts.phases["fetch"] == 4.0


def test_a_server_restarted_in_place_is_a_start_from_its_previous_exit() -> None:
    pod, _ = recorded("server_restarted")
    parts = split(pod, None, since_restart=True)
    assert parts is not None and parts.after_restart and parts.restarts == 1
    assert parts.phases == {"retry": 10.0, "server": 8.0}
    assert parts.seconds == 18.0 and parts.cache == "warm"


def test_a_ready_answer_that_does_not_fit_is_ignored() -> None:
    pod, ready = recorded("warm_cache")
    assert ready is not None
    for broken in (
        {**ready, "ready": False},
        {**ready, "ready_after_s": "soon"},
        {**ready, "ready_after_s": 1.0},  # shorter than its own phases
    ):
        parts = split(pod, broken)
        assert parts is not None and parts.source == "pod" and "server" in parts.phases


def test_a_pod_not_ready_has_no_split() -> None:
    pod, _ = recorded("warm_cache")
    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "Ready"]
    assert split(pod) is None


def test_accounting_counts_each_start_once_with_its_phases_and_hit_rate() -> None:
    cold, cold_ready = recorded("cold_cache")
    warm, warm_ready = recorded("warm_cache")
    waited, _ = recorded("image_present_waited")
    status, new = coldstarts.account(
        [cold, warm, waited],
        None,
        {cold["metadata"]["name"]: cold_ready, warm["metadata"]["name"]: warm_ready},
        in_window=lambda created, _: created >= datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )
    assert [c.pod for c in new] == [
        "tts-6d9f7c5b8-q9m2d", "tts-6d9f7c5b8-x2k4q", "tts-6d9f7c5b8-p7wzn",
    ]  # fmt: skip
    assert status["count"] == 3 and status["inWindow"] == 1 and status["outsideWindows"] == 2
    assert status["cacheHitRate"] == pytest.approx(2 / 3, abs=0.001)
    last = status["recent"][-1]
    assert last["at"] == "2026-03-02T09:10:10Z" and last["cache"] == "warm" and last["inWindow"]
    assert status["phases"]["fetch"] == {"p50": 4.0, "p95": 9.0}
    assert status["phases"]["load"] == {"p50": 0.61, "p95": 1.02}
    again, new = coldstarts.account([cold, warm, waited], status)
    assert new == [] and again == status

    # The warm pod's server is restarted in place: one more start, from the previous exit.
    restarted, _ = recorded("server_restarted")
    third, new = coldstarts.account([cold, restarted, waited], again)
    assert [c.pod for c in new] == ["tts-6d9f7c5b8-p7wzn"] and third["count"] == 4
    assert new[0].split is not None and new[0].split.after_restart
    assert "after its server container restarted" in coldstarts.describe(new[0])


def test_once_recent_is_full_older_ready_pods_are_not_counted_again() -> None:
    """More Ready pods than ``recent`` holds are each counted once, not again every pass."""
    pods = []
    for i in range(coldstarts.RECENT + 5):
        pod, _ = recorded("warm_cache")
        pod["metadata"]["name"] = f"tts-{i:03d}"
        for c in pod["status"]["conditions"]:
            if c["type"] == "Ready":
                c["lastTransitionTime"] = f"2026-03-02T09:{10 + i:02d}:10Z"
        pods.append(pod)
    status, new = coldstarts.account(pods, None)
    assert len(new) == coldstarts.RECENT + 5 and len(status["recent"]) == coldstarts.RECENT
    again, new = coldstarts.account(pods, status)
    assert new == [] and again["count"] == coldstarts.RECENT + 5


def test_the_event_reads_as_one_line() -> None:
    pod, ready = recorded("cold_cache")
    [start] = coldstarts.account([pod], None, {pod["metadata"]["name"]: ready})[1]
    assert coldstarts.describe(start) == (
        "pod tts-6d9f7c5b8-x2k4q ready 84.0 s after it was created (downloaded 160.0 MB, "
        "outside windows): scheduling 1.0 s, image 69.0 s, fetch 4.0 s, import 4.0 s, "
        "load 1.0 s, warmup 3.9 s, probe 1.1 s"
    )


def test_a_statefulset_replica_back_under_its_old_name_is_a_new_start() -> None:
    """PerReplica pods keep their names (NAME-0) across scale-down and up: a start is known by
    the pod's uid, so the replica a window brings back is counted, and the same pod is not."""
    first, _ = recorded("warm_cache")
    first["metadata"] |= {"name": "tts-0", "uid": "uid-first"}
    status, new = coldstarts.account([first], None)
    assert len(new) == 1 and status["recent"][-1]["uid"] == "uid-first"
    back = json.loads(json.dumps(first))
    back["metadata"]["uid"] = "uid-back"
    for c in back["status"]["conditions"]:
        if c["type"] == "Ready":
            c["lastTransitionTime"] = "2026-03-02T11:00:00Z"
    again, new = coldstarts.account([back], status)
    assert [c.pod for c in new] == ["tts-0"] and again["count"] == 2
    assert coldstarts.account([back], again)[1] == []
    # A record from before uids were kept still matches its pod by name.
    legacy = {
        **status,
        "recent": [{k: v for k, v in r.items() if k != "uid"} for r in status["recent"]],
    }
    assert coldstarts.account([first], legacy)[1] == []


def simulated(pod: dict[str, Any]) -> dict[str, Any]:
    """The same pod as KWOK marks it Ready: container statuses without a containerID."""
    status = json.loads(json.dumps(pod["status"]))
    for c in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
        c.pop("containerID", None)
        for state in ("state", "lastState"):
            for detail in (c.get(state) or {}).values():
                detail.pop("containerID", None)
    return {**pod, "status": status}


def test_a_start_no_container_runtime_ran_is_marked_simulated_not_measured() -> None:
    pod, _ = recorded("cold_cache")
    parts = split(simulated(pod), None)
    assert parts is not None and parts.source == "simulated"
    status, new = coldstarts.account([simulated(pod)], None)
    assert status["recent"][-1]["source"] == "simulated"
    line = coldstarts.describe(new[0])
    assert "simulated node" in line and "not a measured cold start" in line
    # The same pod run by a runtime is a measurement, with its phases in the Event.
    assert split(pod, None).source == "pod"  # type: ignore[union-attr]
    assert "simulated" not in coldstarts.describe(coldstarts.account([pod], None)[1][0])


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def pre_pulled(precise: bool = True) -> tuple[dict[str, Any], dict[str, Any], datetime | None]:
    """A warm-cache replica on a node that holds the image, as the API records it, with the
    finer instants the scheduler's Event, the fetch step's report and the server's /ready give
    (``precise``) or without them (an older fetch step and server, no Event read).

    What happened: created 09:10:00.4, scheduled at :00.90, the fetch step ran from :01.02 to
    :01.93, the server process started at :02.06 and was ready 6.42 s later (:08.48); the
    kubelet marked the pod Ready at :09.1. The API's whole seconds: scheduled :00, fetch
    :01 -> :01, server :02, Ready :09, so two truncated gaps read 2 s of image where the
    runtime took 0.25 s.
    """
    pod, ready = recorded("warm_cache")
    assert ready is not None
    status = pod["status"]
    for c in status["conditions"]:
        c["lastTransitionTime"] = {
            "PodScheduled": "2026-03-02T09:10:00Z",
            "Ready": "2026-03-02T09:10:09Z",
            "ContainersReady": "2026-03-02T09:10:09Z",
        }.get(c["type"], c["lastTransitionTime"])
    fetch = status["initContainerStatuses"][0]["state"]["terminated"]
    fetch |= {"startedAt": "2026-03-02T09:10:01Z", "finishedAt": "2026-03-02T09:10:01Z"}
    status["containerStatuses"][0]["state"]["running"]["startedAt"] = "2026-03-02T09:10:02Z"
    if not precise:
        return pod, ready, None
    message = json.loads(fetch["message"])
    message |= {
        "started_at": at("2026-03-02T09:10:01.02Z").timestamp(),
        "ended_at": at("2026-03-02T09:10:01.93Z").timestamp(),
    }
    fetch["message"] = json.dumps(message)
    ready = {**ready, "process_started_at": at("2026-03-02T09:10:02.06Z").timestamp()}
    return pod, ready, at("2026-03-02T09:10:00.90Z")


def test_finer_instants_show_a_pre_pulled_image_phase_under_a_second() -> None:
    pod, ready, scheduled = pre_pulled()
    parts = split(pod, ready, scheduled_at=scheduled)
    assert parts is not None and parts.source == "server"
    # 0.12 s scheduled -> fetch step (the image phase), 0.13 s fetch step -> server (its
    # container's creation, in import); the rest where each clock put it: created (whole
    # second) -> scheduled, the fetch's own 0.91 s, the server's own phases from its process
    # start, and Ready's second after the server's ready.
    assert parts.phases == {
        "scheduling": 0.9, "image": 0.12, "fetch": 0.91,
        "import": 0.13 + 2.31, "load": 0.61, "warmup": 3.5, "probe": 0.52,
    }  # fmt: skip
    assert sum(parts.phases.values()) == pytest.approx(parts.seconds, abs=0.001)
    assert parts.seconds == total(pod) == 9.0


def test_without_the_finer_instants_the_stamps_give_the_old_split() -> None:
    pod, ready, _ = pre_pulled(precise=False)
    parts = split(pod, ready)
    assert parts is not None
    assert parts.phases == {
        "scheduling": 0.0, "image": 1.0, "fetch": 0.0,
        "import": 1.0 + 2.31, "load": 0.61, "warmup": 3.5, "probe": 0.58,
    }  # fmt: skip
    assert sum(parts.phases.values()) == pytest.approx(parts.seconds, abs=0.001)


@pytest.mark.parametrize(
    "name", ["cold_cache", "warm_cache", "image_present_waited", "fetch_restarted"]
)
def test_recorded_pods_without_finer_instants_split_as_before(name: str) -> None:
    """Reports and /ready bodies from before the finer instants (the recorded pods) and no
    Scheduled Event give exactly what the whole-second stamps gave."""
    pod, ready = recorded(name)
    assert split(pod, ready, scheduled_at=None) == split(pod, ready)


def test_a_finer_instant_far_from_its_stamp_is_not_taken() -> None:
    """An instant outside its stamp's second (by more than the slack) is another event or a
    skewed clock: the stamp stays the boundary, and the other finer instants still count."""
    pod, ready, scheduled = pre_pulled()
    assert scheduled is not None
    late = {**ready, "process_started_at": ready["process_started_at"] + 5}
    parts = split(pod, late, scheduled_at=scheduled - timedelta(seconds=3))
    assert parts is not None and parts.source == "server"
    # Scheduled at the condition's :00, the server from its container's :02.
    assert parts.phases["scheduling"] == 0.0
    assert parts.phases["image"] == pytest.approx(1.02)
    assert parts.phases["fetch"] == 0.91
    assert sum(parts.phases.values()) == pytest.approx(parts.seconds, abs=0.001)


def test_a_server_ready_past_the_ready_stamp_is_held_at_it() -> None:
    """Ready has whole seconds: a server that turned ready within Ready's second ends the phases
    at the stamp (probe 0, warm-up cut), so they still add up to created -> Ready."""
    pod, ready, scheduled = pre_pulled()
    slow = {**ready, "ready_after_s": 7.2, "phase_seconds": {**ready["phase_seconds"]}}
    parts = split(pod, slow, scheduled_at=scheduled)
    assert parts is not None
    # Server start :02.06 + 7.2 s = :09.26, past Ready's :09.
    assert parts.phases["probe"] == 0.0
    assert parts.phases["warmup"] == pytest.approx(3.5 - 0.26)
    assert sum(parts.phases.values()) == pytest.approx(parts.seconds, abs=0.001)


def test_accounting_takes_the_scheduled_instant_by_uid_or_name() -> None:
    pod, ready, scheduled = pre_pulled()
    assert scheduled is not None
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    for times in ({uid: scheduled}, {name: scheduled}):
        [start] = coldstarts.account([pod], None, {name: ready}, scheduled=times)[1]
        assert start.split is not None and start.split.phases["image"] == 0.12
    # Another pod's Event (a replica that had this name before) is not this one's.
    [start] = coldstarts.account([pod], None, {name: ready}, scheduled={"other-uid": scheduled})[1]
    assert start.split is not None and start.split.phases["scheduling"] == 0.0
