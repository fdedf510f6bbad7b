"""Every Event reason is a constant of reconcile/report.py, and each is posted once per change."""

from __future__ import annotations

from typing import Any

import pytest

from emotivoice_operator.crd.schema import CRD
from emotivoice_operator.reconcile import report
from emotivoice_operator.reconcile.memory import Memory
from emotivoice_operator.reconcile.report import PHASE_REASONS, REASONS, Reporter
from emotivoice_operator.reconcile.status import Observed, compute_status
from emotivoice_operator.render import Owner

OWNER = Owner(name="tts", namespace="ns", uid="u-1")


def _phase(**kw: Any) -> str:
    base: dict[str, Any] = dict(
        generation=1, warm_floor=1, active_window="", next_window="", next_window_start=None,
        workload={"spec": {"replicas": 1}, "status": {"replicas": 1, "readyReplicas": 0}}, pods=[],
    )  # fmt: skip
    base.update(kw)
    return compute_status(Observed(**base))["phase"]


def test_every_reason_is_a_constant_named_after_it() -> None:
    constants = {k: v for k, v in vars(report).items() if k.startswith("REASON_")}
    assert sorted(constants.values()) == sorted(REASONS)
    for name, reason in constants.items():
        words = name.removeprefix("REASON_").split("_")
        assert reason == "".join(w.capitalize() for w in words), name


def test_every_phase_the_status_can_reach_has_its_reason() -> None:
    reached = {
        _phase(spec_error="bad"),
        _phase(apply_error="refused"),
        _phase(workload={"spec": {"replicas": 0}, "status": {}}, warm_floor=0),
        _phase(workload={"spec": {"replicas": 1}, "status": {"replicas": 1, "readyReplicas": 1}}),
        _phase(),
    }
    assert reached == set(PHASE_REASONS)
    assert {f"Phase{p}" for p in PHASE_REASONS} == set(PHASE_REASONS.values())
    status = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    described = status["properties"]["phase"]["description"]
    assert all(phase in described for phase in PHASE_REASONS)


@pytest.mark.parametrize(
    ("method", "reason", "status"),
    [
        ("invalid_spec", "InvalidSpec", {"message": "same"}),
        ("name_conflict", "NameConflict", {"message": "same"}),
        ("apply_failed", "ApplyFailed", {"message": "same"}),
        (
            "cache_unreachable",
            "CacheUnreachable",
            {"conditions": [{"type": "CacheReachable", "message": "same"}]},
        ),
    ],
)
def test_a_warning_that_repeats_the_status_is_posted_once_per_change(
    method: str, reason: str, status: dict[str, Any]
) -> None:
    posted: list[tuple[str, str, str]] = []

    def post(*event: str) -> None:
        posted.append(event)  # type: ignore[arg-type]

    getattr(Reporter(OWNER, post, Memory.from_status(status)), method)("same")
    assert posted == []
    getattr(Reporter(OWNER, post, Memory.from_status(status)), method)("changed")
    assert posted == [("Warning", reason, "changed")]


def test_a_phase_change_is_posted_with_the_status_message() -> None:
    posted: list[tuple[str, str, str]] = []
    reporter = Reporter(OWNER, lambda *e: posted.append(e), Memory.from_status({"phase": "Ready"}))
    reporter.phase({"phase": "Ready", "message": "1 of 1 replicas ready"})
    reporter.phase({"phase": "Progressing", "message": "0 of 1 replicas ready: waiting"})
    assert posted == [("Normal", "PhaseProgressing", "0 of 1 replicas ready: waiting")]
