"""Pure status logic: phases, what-is-missing messages, cold-start accounting, drift."""

from __future__ import annotations

from typing import Any

from emotivoice_fetch.errors import ExitCode, describe_exit
from emotivoice_operator.reconcile.drift import differences
from emotivoice_operator.reconcile.status import Observed, compute_status, with_transition_times
from emotivoice_operator.tuning.coldstarts import RECENT, account


def _pod(name: str, start: str | None, ready_at: str | None, **status: Any) -> dict[str, Any]:
    conditions = (
        [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}] if ready_at else []
    )
    return {
        "metadata": {"name": name},
        "status": {"startTime": start, "conditions": conditions, **status},
    }


def _observed(**kw: Any) -> Observed:
    base: dict[str, Any] = dict(
        generation=3, warm_floor=1, active_window="", next_window="", next_window_start=None,
        workload={"spec": {"replicas": 1}, "status": {"replicas": 1, "readyReplicas": 0}}, pods=[],
    )  # fmt: skip
    base.update(kw)
    return Observed(**base)


def test_cold_starts_are_counted_once_per_pod() -> None:
    pods = [
        _pod("a", "2026-01-01T00:00:00Z", "2026-01-01T00:00:20Z"),
        _pod("b", "2026-01-01T00:01:00Z", "2026-01-01T00:01:10Z"),
        _pod("c", "2026-01-01T00:02:00Z", None),  # still loading: not counted yet
    ]
    first, new = account(pods, None)
    assert [c.pod for c in new] == ["a", "b"]
    assert first["count"] == 2 and first["lastSeconds"] == 10 and first["medianSeconds"] == 15
    again, new = account(pods, first)
    assert new == [] and again["count"] == 2
    pods[2] = _pod("c", "2026-01-01T00:02:00Z", "2026-01-01T00:02:30Z")
    third, new = account(pods, again)
    assert [c.pod for c in new] == ["c"] and third["count"] == 3 and third["lastSeconds"] == 30


def test_cold_start_samples_are_bounded_but_the_count_is_not() -> None:
    status: dict[str, Any] | None = None
    for i in range(RECENT + 5):
        status, _ = account([_pod(f"p{i}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z")], status)
    assert status is not None
    assert status["count"] == RECENT + 5 and len(status["recent"]) == RECENT


def test_progressing_names_what_is_missing() -> None:
    unscheduled = _pod("tts-1", None, None)
    unscheduled["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/2 nodes: unbound PVC",
        }
    ]
    downloading = _pod(
        "tts-2", "2026-01-01T00:00:00Z", None, initContainerStatuses=[{"state": {"running": {}}}]
    )
    status = compute_status(_observed(pods=[unscheduled, downloading]))
    assert status["phase"] == "Progressing"
    assert "tts-1 cannot be scheduled: 0/2 nodes: unbound PVC" in status["message"]
    assert "tts-2: downloading the model" in status["message"]
    assert status["observedGeneration"] == 3


# The fetch step's log tail as the kubelet keeps it (FallbackToLogsOnError): its last line is the
# one-line error.
DENIED_LOG = (
    "emotivoice-fetch: listing s3://models/emotivoice/v1/\n"
    "emotivoice-fetch: error: access denied (InvalidAccessKeyId) listing s3://models/emotivoice/v1/: "
    "check the credentials in the model's Secret (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the "
    "bucket policy\n"
)


def _fetch_status(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    """An init container's status in the shape the kubelet sends (core/v1 ContainerStatus)."""
    return {
        "name": "fetch-model",
        "image": "registry.example.com/emotivoice/server:0.1.0-cpu",
        "imageID": "registry.example.com/emotivoice/server@sha256:" + "a" * 64,
        "containerID": "containerd://" + "b" * 64,
        "ready": False,
        "restartCount": 3 if last else 0,
        "started": False,
        "state": state,
        "lastState": last or {},
    }


def _terminated(code: int, message: str = "", reason: str = "Error") -> dict[str, Any]:
    out = {
        "exitCode": code,
        "reason": reason,
        "startedAt": "2026-01-01T00:01:10Z",
        "finishedAt": "2026-01-01T00:01:12Z",
        "containerID": "containerd://" + "c" * 64,
    }
    return out | ({"message": message} if message else {})


def _message_for(init: dict[str, Any]) -> str:
    pod = _pod("tts-0", "2026-01-01T00:00:00Z", None, initContainerStatuses=[init])
    return compute_status(_observed(pods=[pod]))["message"]


def test_a_fetch_in_crash_loop_back_off_names_its_last_exit_code() -> None:
    """Between tries the kubelet shows the fetch step waiting in CrashLoopBackOff; the cause is
    in lastState.terminated, and the message names its exit code from the fetch step's table."""
    waiting = {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": "back-off 40s restarting failed container=fetch-model "
            "pod=tts-0_voice(5b0c1d2e-0000-4000-8000-000000000002)",
        }
    }
    message = _message_for(_fetch_status(waiting, {"terminated": _terminated(3, DENIED_LOG)}))
    assert "tts-0: model download failed, exit 3 (the store refused the credentials)" in message
    assert "access denied (InvalidAccessKeyId)" in message
    assert "emotivoice-fetch: error" not in message  # the cause, not the log's prefix
    assert "CrashLoopBackOff" in message
    assert describe_exit(ExitCode.CREDENTIALS) == "exit 3 (the store refused the credentials)"


def test_a_failed_fetch_names_exit_code_and_meaning_in_every_state() -> None:
    mismatch = (
        "emotivoice-fetch: error: checksum mismatch for g_00140000: expected sha256 "
        + "d" * 64
        + ", the object s3://models/emotivoice/v1/g_00140000 has "
        + "e" * 64
    )
    # The instant it ends, before the kubelet restarts it.
    just_failed = _message_for(_fetch_status({"terminated": _terminated(6, mismatch)}))
    assert "model download failed, exit 6 (checksum mismatch): checksum mismatch for" in just_failed
    # Its next try running: the last failure is still named.
    retrying = _message_for(
        _fetch_status({"running": {"startedAt": "2026-01-01T00:01:52Z"}},
                      {"terminated": _terminated(9, "emotivoice-fetch: error: no answer")})
    )  # fmt: skip
    assert "downloading the model again" in retrying
    assert "exit 9 (the store did not answer, every retry spent): no answer" in retrying
    # Killed by the kernel (no message: the kubelet's reason is all there is).
    oom = _message_for(
        _fetch_status({"waiting": {"reason": "CrashLoopBackOff"}},
                      {"terminated": _terminated(137, reason="OOMKilled")})
    )  # fmt: skip
    assert "exit 137 (killed by signal 9): OOMKilled" in oom
    # A first try still running, and one done: no failure to name.
    assert "tts-0: downloading the model" in _message_for(
        _fetch_status({"running": {"startedAt": "2026-01-01T00:00:05Z"}})
    )
    done = _fetch_status({"terminated": _terminated(0, reason="Completed")})
    assert "loading and warming up the model" in _message_for(done)


def test_ready_scaled_to_zero_and_failed_phases() -> None:
    ready = {"spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 2}}
    assert compute_status(_observed(workload=ready))["phase"] == "Ready"
    zero = {"spec": {"replicas": 0}, "status": {}}
    assert compute_status(_observed(workload=zero, warm_floor=0))["phase"] == "ScaledToZero"
    failed = compute_status(_observed(spec_error="spec.warmPool.timeZone: unknown"))
    assert failed["phase"] == "Failed"
    assert {c["type"]: c["status"] for c in failed["conditions"]}["SpecValid"] == "False"


def test_transition_time_moves_only_when_status_changes() -> None:
    old = [{"type": "Ready", "status": "False", "lastTransitionTime": "T0"}]
    same = with_transition_times([{"type": "Ready", "status": "False"}], old, "T1")
    flipped = with_transition_times([{"type": "Ready", "status": "True"}], old, "T1")
    assert same[0]["lastTransitionTime"] == "T0" and flipped[0]["lastTransitionTime"] == "T1"


def test_drift_ignores_server_defaults_but_not_changed_values() -> None:
    want = {"spec": {"ports": [{"port": 8080, "targetPort": "http"}], "replicas": 2}}
    live = {
        "spec": {
            "ports": [{"port": 8080, "targetPort": "http", "protocol": "TCP"}],
            "replicas": 2,
            "clusterIP": "10.0.0.1",
        }
    }
    assert differences(want, live) == []
    live["spec"]["ports"][0]["targetPort"] = 8080
    assert differences(want, live) == [".spec.ports[0].targetPort"]
    assert differences({"cpu": "2"}, {"cpu": 2}) == []
    assert differences({"env": [], "args": ["a"]}, {"args": ["a"]}) == []
    assert differences({"memory": "2Gi"}, {"memory": "2048Mi"}) == []
    assert differences({"cpu": "0.5"}, {"cpu": "500m"}) == []
    assert differences({"memory": "2Gi"}, {"memory": "3Gi"}) == [".memory"]
    assert differences({"image": "a:1"}, {"image": "a:2"}) == [".image"]


def test_a_name_conflict_fails_the_spec_and_names_the_object() -> None:
    status = compute_status(_observed(conflict="Service tts already exists and is not managed"))
    assert status["phase"] == "Failed"
    assert "Service tts" in status["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["SpecValid"]["status"] == "False"
    assert conditions["SpecValid"]["reason"] == "NameConflict"
    assert "Service tts" in conditions["SpecValid"]["message"]
    assert conditions["Ready"]["status"] == "False"


def test_warm_request_fixes_are_written_and_only_when_there_are_some() -> None:
    assert "warmRequests" not in compute_status(_observed())
    fixes = {
        "nonexistent-window": None,
        "peak": {"replicas": 2, "expiresAt": "2026-01-01T10:00:00Z"},
    }
    assert compute_status(_observed(warm_request_fixes=fixes))["warmRequests"] == fixes


def test_value_at_follows_differences_paths() -> None:
    from emotivoice_operator.reconcile.drift import value_at

    live = {
        "metadata": {"labels": {"app.kubernetes.io/name": "emotivoice"}},
        "spec": {"ports": [{"port": 8080}, {"port": 9999}], "template": {"c": [{"env": [1]}]}},
    }
    want = {
        "spec": {"ports": [{"port": 8080}]},
        "metadata": {"labels": {"app.kubernetes.io/name": "x"}},
    }
    paths = differences(want, live)
    assert set(paths) == {".spec.ports", ".metadata.labels.app.kubernetes.io/name"}
    assert value_at(live, ".spec.ports") == live["spec"]["ports"]
    assert value_at(live, ".metadata.labels.app.kubernetes.io/name") == "emotivoice"
    assert value_at(live, ".spec.template.c[0].env[0]") == 1
    assert value_at(live, ".spec.nothing") is None
    assert value_at(live, ".spec.ports[5]") is None


def test_progressing_without_pods_names_the_workload_kind() -> None:
    """PerReplica services run a StatefulSet: the message must not send a user looking for a
    Deployment that does not exist."""
    for kind in ("StatefulSet", "Deployment"):
        workload = {"kind": kind, "spec": {"replicas": 1}, "status": {"replicas": 0}}
        status = compute_status(_observed(workload=workload))
        assert status["phase"] == "Progressing"
        assert status["message"].endswith(f"waiting for the {kind} to create pods"), status
