"""The order a pass applies its children in when each wave's requests go out at once.

Why it matters: the API server refuses a RoleBinding whose Role does not exist yet (the
escalation check reads the Role to see that the operator holds what it grants), so a pass that
sent every apply at once failed for every new service and came back a second later."""

from __future__ import annotations

from datetime import UTC, datetime

from emotivoice_operator.desired import desired_state
from emotivoice_operator.reconcile.apply import apply_waves
from emotivoice_operator.render import Owner
from emotivoice_operator.settings import OperatorSettings
from tests.support.invalid_specs import valid_resource

OWNER = Owner(name="tts-valid", namespace="ns", uid="uid-1")


def _manifests() -> list[dict]:
    spec = valid_resource()["spec"]
    now = datetime(2030, 1, 7, tzinfo=UTC)
    return desired_state(spec, OWNER, now, {}, OperatorSettings()).manifests


def test_every_child_is_applied_once() -> None:
    manifests = _manifests()
    waves = apply_waves(manifests)
    assert sorted(i for wave in waves for i in wave) == list(range(len(manifests)))


def test_a_rolebinding_comes_in_a_wave_after_the_role_it_names() -> None:
    manifests = _manifests()
    wave_of = {i: n for n, wave in enumerate(apply_waves(manifests)) for i in wave}
    roles = {
        m["metadata"]["name"]: wave_of[i] for i, m in enumerate(manifests) if m["kind"] == "Role"
    }
    bindings = [(i, m) for i, m in enumerate(manifests) if m["kind"] == "RoleBinding"]
    assert bindings, "the example's window renders a pre-warm RoleBinding"
    for i, binding in bindings:
        assert wave_of[i] > roles[binding["roleRef"]["name"]]


def test_the_rest_go_out_together_in_the_first_wave() -> None:
    manifests = _manifests()
    first = apply_waves(manifests)[0]
    assert {manifests[i]["kind"] for i in first} >= {
        "ServiceAccount",
        "Role",
        "Service",
        "StatefulSet",
        "HorizontalPodAutoscaler",
        "CronJob",
    }
