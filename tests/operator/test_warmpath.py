"""The warm path, pure: when the pre-pull and the placeholders run (warmpath/plan.py), what they
look like (render/warmpath.py), what the kubelet's Pulled Events say (warmpath/pulls.py), what
their pods show (warmpath/nodes.py), and how desired_state puts it together."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from emotivoice_operator.cli_render import load_services
from emotivoice_operator.desired import WarmPathMemory, desired_state
from emotivoice_operator.render import Owner
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.tuning import coldstarts
from emotivoice_operator.warmpath import nodes as wn
from emotivoice_operator.warmpath.pulls import Pull, go_duration, image_lead, parse_pulled

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(name="tts", namespace="voice", uid="5b0c1d2e-0000-4000-8000-000000000001")
SETTINGS = OperatorSettings(pause_image="registry.k8s.io/pause:3.10")
# examples/gpu-peak-windows.yaml: Asia/Shanghai (UTC+8), morning Mon-Fri 09:00-12:00 lead 15m
# replicas 3, evening daily 19:00-23:30 lead 10m replicas 2; replicas.min 1; one GPU.
GPU = next(s for s in load_services([ROOT / "examples"]) if s["metadata"]["name"] == "tts-gpu")
# Monday 2025-03-03 09:00 in Shanghai.
MORNING = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)


def _spec(
    pre_pull: dict[str, Any] | None = None, capacity: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec = copy.deepcopy(GPU["spec"])
    if pre_pull is not None:
        spec["warmPool"]["prePull"] = pre_pull
    if capacity is not None:
        spec["warmPool"]["windows"][0]["capacity"] = capacity
    return spec


def _desired(spec: dict[str, Any], at: datetime, memory: WarmPathMemory | None = None):
    return desired_state(spec, OWNER, at, {}, SETTINGS, warm_memory=memory)


def _kinds(desired) -> dict[str, dict[str, Any]]:
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in desired.manifests}


# --- when ------------------------------------------------------------------------------------


def test_pre_pull_is_off_by_default_and_renders_nothing():
    desired = _desired(_spec(), MORNING - timedelta(minutes=18))
    assert "DaemonSet/tts-prepull" not in _kinds(desired)
    assert desired.warm_path.stages == []


def test_the_pre_pull_runs_from_start_minus_lead_minus_image_lead_until_the_replicas_are_ready():
    spec = _spec({"enabled": True, "lead": "5m"})
    begins = MORNING - timedelta(minutes=15) - timedelta(minutes=5)
    assert "DaemonSet/tts-prepull" not in _kinds(_desired(spec, begins - timedelta(seconds=1)))
    ds = _kinds(_desired(spec, begins))["DaemonSet/tts-prepull"]
    assert (
        ds["metadata"]["annotations"]["tts.emotivoice.io/window"] == "morning@2025-03-03T01:00:00Z"
    )
    # After the replicas' lead the floor is 3: with 2 Ready the pull stays, with 3 it goes.
    during = MORNING - timedelta(minutes=5)
    assert "DaemonSet/tts-prepull" in _kinds(
        _desired(spec, during, WarmPathMemory(ready_replicas=2))
    )
    met = _desired(spec, during, WarmPathMemory(ready_replicas=3))
    assert "DaemonSet/tts-prepull" not in _kinds(met)
    assert met.warm_path.done == {"morning@2025-03-03T01:00:00Z"}
    # Once done (status remembers it) a replica lost later does not bring the pull back.
    again = _desired(spec, during, WarmPathMemory(ready_replicas=1, done=met.warm_path.done))
    assert "DaemonSet/tts-prepull" not in _kinds(again)
    # Never after the occurrence's end, Ready or not.
    after = _desired(spec, MORNING + timedelta(hours=3))
    assert after.warm_path.prepull_for is None
    assert [s.start for s in after.warm_path.stages if s.window.name == "morning"] == [
        MORNING + timedelta(days=1)
    ]


def test_a_holiday_warms_no_image_and_holds_no_node():
    spec = _spec({"enabled": True, "lead": "5m"}, {"placeholders": True, "nodeLead": "10m"})
    spec["warmPool"]["dates"] = [{"date": "2025-03-03", "name": "day off"}]
    desired = _desired(spec, MORNING - timedelta(minutes=20))
    assert "DaemonSet/tts-prepull" not in _kinds(desired)
    assert desired.warm_path.placeholders_create == {}
    # The next occurrence it plans is Tuesday's.
    (morning,) = [s for s in desired.warm_path.stages if s.window.name == "morning"]
    assert morning.start == MORNING + timedelta(days=1)


def test_placeholders_come_a_node_lead_ahead_and_are_not_recreated_once_the_replicas_come():
    spec = _spec(capacity={"placeholders": True, "nodeLead": "10m"})
    node_at = MORNING - timedelta(minutes=25)
    assert _desired(spec, node_at - timedelta(seconds=1)).warm_path.placeholders_create == {}
    holding = _desired(spec, node_at)
    pods = holding.warm_path.placeholders_create["morning"]
    # replicas 3 - replicas.min 1: the window's extra replicas need the room.
    assert [p["metadata"]["name"] for p in pods] == ["tts-hold-morning-0", "tts-hold-morning-1"]
    # From the replicas' lead: kept (they are being preempted) but no new ones.
    replicas_at = _desired(spec, MORNING - timedelta(minutes=15))
    assert replicas_at.warm_path.placeholders_create == {}
    assert replicas_at.warm_path.placeholders_keep == {"morning"}
    # Replicas Ready: removed.
    ready = _desired(spec, MORNING - timedelta(minutes=5), WarmPathMemory(ready_replicas=3))
    assert ready.warm_path.placeholders_keep == frozenset()
    # The evening window asked for none.
    assert all(s.node_at is None for s in ready.warm_path.stages if s.window.name == "evening")


def test_the_lead_split_names_each_part():
    spec = _spec({"enabled": True, "lead": "7m"}, {"placeholders": True, "nodeLead": "10m"})
    (morning, _) = _desired(spec, MORNING - timedelta(hours=2)).warm_path.stages
    assert morning.split() == "node 10m, image 7m, replicas 15m"
    assert morning.edges() == [
        MORNING - timedelta(minutes=22),
        MORNING - timedelta(minutes=25),
        MORNING - timedelta(minutes=15),
        MORNING + timedelta(hours=3),
    ]


# --- what ------------------------------------------------------------------------------------


def test_the_pre_pull_daemonset_lands_where_the_server_pods_land_and_holds_nothing():
    spec = _spec({"enabled": True, "lead": "5m"})
    spec["server"]["tolerations"] = [{"key": "dedicated", "value": "tts", "effect": "NoSchedule"}]
    spec["server"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        },
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
    }
    children = _kinds(_desired(spec, MORNING - timedelta(minutes=20)))
    ds = children["DaemonSet/tts-prepull"]
    kubernetes_validate.validate(ds, "1.34", strict=True)
    pod = ds["spec"]["template"]["spec"]
    server = children["Deployment/tts"]["spec"]["template"]["spec"]
    (pull,) = pod["initContainers"]
    assert (
        pull["image"]
        == "registry.example.com/emotivoice/server:0.1.0"
        == server["containers"][0]["image"]
    )
    assert pull["command"] == ["sh", "-c", "exit 0"]
    assert [c["image"] for c in pod["containers"]] == ["registry.k8s.io/pause:3.10"]
    for c in [*pod["initContainers"], *pod["containers"]]:
        assert c["resources"] == {
            "requests": {"cpu": "1m", "memory": "8Mi"},
            "limits": {"memory": "32Mi"},
        }
    assert pod["tolerations"] == server["tolerations"]
    assert pod["affinity"] == {"nodeAffinity": spec["server"]["affinity"]["nodeAffinity"]}
    # gpus: 1 and no GPU request: the GPU node label keeps it off CPU nodes.
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_a_cpu_pool_gets_no_gpu_node_selector_and_a_gpu_pool_the_configured_one():
    cpu = _spec({"enabled": True, "lead": "5m"})
    cpu["server"]["gpus"] = 0
    del cpu["server"]["nodeSelector"]
    pod = _kinds(_desired(cpu, MORNING - timedelta(minutes=20)))["DaemonSet/tts-prepull"]
    assert "nodeSelector" not in pod["spec"]["template"]["spec"]
    gpu = _spec({"enabled": True, "lead": "5m", "gpuNodeSelector": {"accelerator": "l4"}})
    del gpu["server"]["nodeSelector"]
    pod = _kinds(_desired(gpu, MORNING - timedelta(minutes=20)))["DaemonSet/tts-prepull"]
    assert pod["spec"]["template"]["spec"]["nodeSelector"] == {"accelerator": "l4"}


def test_placeholders_ask_for_what_a_server_pod_asks_for_at_the_placeholder_priority():
    spec = _spec(capacity={"placeholders": True})
    desired = _desired(spec, MORNING - timedelta(minutes=20))
    server = _kinds(desired)["Deployment/tts"]["spec"]["template"]["spec"]
    for pod in desired.warm_path.placeholders_create["morning"]:
        kubernetes_validate.validate(pod, "1.34", strict=True)
        (hold,) = pod["spec"]["containers"]
        assert hold["resources"] == server["containers"][0]["resources"]
        assert hold["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["spec"]["priorityClassName"] == "emotivoice-placeholder"
        assert pod["spec"]["nodeSelector"] == server["nodeSelector"]
        assert pod["spec"]["tolerations"] == server["tolerations"]
        assert pod["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
        assert pod["metadata"]["labels"]["tts.emotivoice.io/window"] == "morning"


# --- pulls and the image lead ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("43.2s", 43.2), ("1m2.5s", 62.5), ("850ms", 0.85), ("1h0m1s", 3601.0), ("12", None)],
)
def test_go_durations(text, seconds):
    assert go_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_pulled_events_are_read_as_pulls_and_present_images_cost_nothing():
    pulled = parse_pulled(
        'Successfully pulled image "reg/server:1" in 1m2.5s (1m3s including waiting). '
        "Image size: 3300000000 bytes.",
        "p",
        "gpu-0",
    )
    assert pulled == Pull("p", "gpu-0", "reg/server:1", 62.5, 3_300_000_000, False)
    present = parse_pulled('Container image "reg/server:1" already present on machine', "p", "n")
    assert present == Pull("p", "n", "reg/server:1", 0.0, None, True)
    assert parse_pulled('Pulling image "reg/server:1"', "p", "n") is None
    assert Pull.from_status(pulled.to_status()) == pulled


def test_the_image_lead_is_initial_until_three_pulls_then_their_p95_plus_a_minute():
    first = image_lead("auto", timedelta(minutes=5), [Pull("a", "n", "i", 200.0, 1, False)], None)
    assert (first.mode, first.lead) == ("initial", timedelta(minutes=5))
    assert "1 of 3 image pulls" in first.basis
    pulls = [Pull(str(i), "n", "i", s, 1, False) for i, s in enumerate([100.0, 170.0, 0.0])]
    learned = image_lead("auto", timedelta(minutes=5), pulls, None)
    # p95 170 s + 60 s = 230 s.
    assert (learned.mode, learned.lead) == ("learned", timedelta(seconds=230))
    fixed = image_lead("15m", timedelta(minutes=5), pulls, None)
    assert (fixed.mode, fixed.lead) == ("fixed", timedelta(minutes=15))


# --- what the pods show ----------------------------------------------------------------------


def _pull_pod(node: str, init: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"nodeName": node}, "status": {"initContainerStatuses": [{"state": init}]}}


def test_node_states_of_the_pre_pull_pods():
    pods = [
        _pull_pod("b", {"terminated": {"exitCode": 0}}),
        _pull_pod("a", {"waiting": {"reason": "PodInitializing"}}),
        _pull_pod("c", {"waiting": {"reason": "ImagePullBackOff"}}),
        {"spec": {}, "status": {}},  # not scheduled yet: no node to speak of
    ]
    assert wn.node_states(pods) == {"a": wn.PULLING, "b": wn.PULLED, "c": wn.FAILED}


def test_placeholder_states():
    assert wn.placeholder_state({"spec": {}}) == wn.PENDING
    assert wn.placeholder_state({"spec": {"nodeName": "gpu-0"}}) == "Holding gpu-0"
    victim = {
        "spec": {"nodeName": "gpu-0"},
        "status": {"conditions": [{"type": "DisruptionTarget", "reason": "PreemptionByScheduler"}]},
    }
    assert wn.placeholder_state(victim) == wn.PREEMPTED


def test_a_cold_start_on_a_pre_pulled_node_says_so():
    pod = json.loads((ROOT / "tests/operator/pods/warm_cache.json").read_text())["pod"]
    node = pod["spec"]["nodeName"]
    status, (start,) = coldstarts.account([pod], None, pre_pulled_nodes=frozenset({node}))
    assert start.image_pre_pulled is True
    assert status["recent"][-1]["imagePrePulled"] is True
    assert "image pre-pulled" in coldstarts.describe(start)
    status, _ = coldstarts.account([pod], None, pre_pulled_nodes=frozenset({"elsewhere"}))
    assert status["recent"][-1]["imagePrePulled"] is False
    status, _ = coldstarts.account([pod], None)
    assert "imagePrePulled" not in status["recent"][-1]


# --- preview ---------------------------------------------------------------------------------


def test_the_preview_splits_each_windows_lead_into_node_image_and_replicas():
    from emotivoice_operator.preview.text import render_text
    from emotivoice_operator.preview.timeline import build_preview

    body = copy.deepcopy(GPU)
    body["spec"] = _spec({"enabled": True, "lead": "7m"}, {"placeholders": True, "nodeLead": "10m"})
    preview = build_preview(body, MORNING - timedelta(hours=9), 1, SETTINGS)
    morning, evening = preview.leads
    assert (morning.node, morning.image, morning.replicas) == (
        timedelta(minutes=10), timedelta(minutes=7), timedelta(minutes=15),
    )  # fmt: skip
    assert (evening.node, evening.image) == (None, timedelta(minutes=7))
    text = render_text(preview)
    assert "  morning: node 10m, image 7m, replicas 15m; from 25m before each start" in text
    assert "  evening: image 7m, replicas 10m; from 17m before each start" in text
    # Without a warm path the preview says nothing of it.
    plain = build_preview(GPU, MORNING - timedelta(hours=9), 1, SETTINGS)
    assert "Lead by window" not in render_text(plain)


def test_the_plot_draws_the_image_and_node_parts_before_the_lead():
    pytest.importorskip("matplotlib")
    from emotivoice_operator.preview import plot
    from emotivoice_operator.preview.timeline import build_preview

    body = copy.deepcopy(GPU)
    body["spec"] = _spec({"enabled": True, "lead": "7m"}, {"placeholders": True, "nodeLead": "10m"})
    fig = plot.figure(build_preview(body, MORNING - timedelta(hours=9), 1, SETTINGS))
    gids = {a.get_gid() for a in fig.axes[0].patches if a.get_gid()}
    assert {"image-lead:morning", "node-lead:morning", "image-lead:evening"} <= gids
    assert "node-lead:evening" not in gids
