"""The fallback pool's pure decisions: which pool the Service selects, what is refused, and
when requests the fallback answered wake a service at zero (emotivoice_operator.fallback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emotivoice_operator import fallback as fb
from emotivoice_operator.crd.spec import SpecError, parse_spec
from emotivoice_operator.desired import desired_state
from emotivoice_operator.render import Owner
from emotivoice_operator.render.names import LABEL_INSTANCE
from emotivoice_operator.settings import OperatorSettings

NOW = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
HOLD = timedelta(minutes=15)
OWNER = Owner("tts-gpu", "voice", "00000000-0000-0000-0000-0000000000aa")


def spec(fallback: dict[str, Any] | None = None, minimum: int = 0) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "model": {"source": {"uri": "s3://models/emotivoice/v1"}},
        "replicas": {"min": minimum, "max": 2},
    }
    if fallback is not None:
        raw["fallback"] = fallback
    return raw


def other(name: str = "tts-cpu", **spec_fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {**spec(), **spec_fields}}


def service_selector(manifests: list[dict[str, Any]]) -> dict[str, str]:
    (svc,) = [m for m in manifests if m["kind"] == "Service"]
    return svc["spec"]["selector"]


# --- what is refused, what is noted ---------------------------------------------------------


def test_no_fallback_changes_nothing() -> None:
    parsed = parse_spec(spec())
    assert fb.check("tts-gpu", parsed, None) == ""
    assert fb.route("tts-gpu", parsed, 0, False) == fb.Route("tts-gpu", fb.OWN)


@pytest.mark.parametrize(
    ("target", "fallback", "words"),
    [
        ("tts-gpu", other("tts-gpu"), "names this service itself"),
        ("voice/tts-cpu", None, "names another namespace"),
        ("tts-cpu", other(fallback={"service": "tts-gpu"}), "(a cycle)"),
        ("tts-cpu", other(fallback={"service": "tts-x"}), "has a fallback of its own (tts-x)"),
    ],
    ids=["itself", "other-namespace", "cycle", "chain"],
)
def test_a_fallback_that_cannot_stand_in_is_refused_naming_the_field(
    target: str, fallback: dict[str, Any] | None, words: str
) -> None:
    with pytest.raises(SpecError) as err:
        fb.check("tts-gpu", parse_spec(spec({"service": target})), fallback)
    assert err.value.field == "fallback.service" and words in err.value.problem


def test_another_model_is_accepted_with_what_a_missing_voice_gets() -> None:
    their = other(model={"source": {"uri": "s3://models/emotivoice-small/v1"}})
    note = fb.check("tts-gpu", parse_spec(spec({"service": "tts-cpu"})), their)
    assert "another model" in note and "unknown voice (400, param voice)" in note
    assert fb.check("tts-gpu", parse_spec(spec({"service": "tts-cpu"})), other()) == ""


def test_a_missing_fallback_keeps_traffic_on_the_own_pods_and_says_so() -> None:
    parsed = parse_spec(spec({"service": "tts-cpu"}))
    assert "does not exist" in fb.check("tts-gpu", parsed, None)
    assert fb.route("tts-gpu", parsed, 0, fallback_exists=False).pool == "tts-gpu"


# --- routing --------------------------------------------------------------------------------


def test_the_service_selects_the_fallback_only_while_no_own_pod_is_ready() -> None:
    parsed = parse_spec(spec({"service": "tts-cpu"}))
    assert fb.route("tts-gpu", parsed, 0, True) == fb.Route("tts-cpu", fb.FALLBACK)
    assert fb.route("tts-gpu", parsed, 1, True) == fb.Route("tts-gpu", fb.OWN)


def test_desired_state_renders_the_selector_of_the_pool_that_serves() -> None:
    raw = spec({"service": "tts-cpu"})
    settings = OperatorSettings()
    cold = desired_state(raw, OWNER, NOW, {}, settings, traffic=fb.Traffic(0, other()))
    assert service_selector(cold.manifests)[LABEL_INSTANCE] == "tts-cpu"
    assert cold.route == fb.Route("tts-cpu", fb.FALLBACK)
    warm = desired_state(raw, OWNER, NOW, {}, settings, traffic=fb.Traffic(1, other()))
    assert service_selector(warm.manifests)[LABEL_INSTANCE] == "tts-gpu"
    # Only the instance label moves: the rest of the selector is the owner's own.
    assert {k: v for k, v in service_selector(cold.manifests).items() if k != LABEL_INSTANCE} == {
        k: v for k, v in service_selector(warm.manifests).items() if k != LABEL_INSTANCE
    }
    plain = desired_state(spec(), OWNER, NOW, {}, settings)
    assert plain.route is None and service_selector(plain.manifests)[LABEL_INSTANCE] == "tts-gpu"


# --- waking ---------------------------------------------------------------------------------


def test_requests_answered_by_the_fallback_wake_a_pool_at_zero_for_the_hold() -> None:
    wake = fb.next_wake(None, True, 0, NOW, HOLD)
    assert wake == fb.Wake(NOW, NOW, NOW + HOLD)
    # No request, no wake; a floor of one already keeps a pod: no wake needed.
    assert fb.next_wake(None, False, 0, NOW, HOLD) is None
    assert fb.next_wake(None, True, 1, NOW, HOLD) is None


def test_a_wake_is_extended_at_most_once_a_minute_and_falls_after_the_hold() -> None:
    wake = fb.Wake(NOW, NOW, NOW + HOLD)
    soon = NOW + timedelta(seconds=30)
    assert fb.next_wake(wake, True, 0, soon, HOLD) is wake  # no status write per request
    later = NOW + timedelta(minutes=2)
    assert fb.next_wake(wake, True, 1, later, HOLD) == fb.Wake(NOW, later, later + HOLD)
    assert fb.next_wake(wake, False, 0, later, HOLD) is wake
    assert fb.next_wake(wake, False, 0, NOW + HOLD, HOLD) is None


def test_a_wake_raises_the_floor_to_one_and_the_wake_round_trips_through_status() -> None:
    raw = spec({"service": "tts-cpu"})
    woken = desired_state(
        raw, OWNER, NOW, {}, OperatorSettings(), traffic=fb.Traffic(0, other(), None, True)
    )
    assert woken.warm_floor == 1 and woken.wake == fb.Wake(NOW, NOW, NOW + HOLD)
    assert fb.Wake.from_status(woken.wake.to_status()) == woken.wake
    assert fb.Wake.from_status({"since": "yesterday"}) is None
    off = {"service": "tts-cpu", "wakeOnRequest": False}
    asleep = desired_state(
        spec(off), OWNER, NOW, {}, OperatorSettings(), traffic=fb.Traffic(0, other(), None, True)
    )
    assert asleep.warm_floor == 0 and asleep.wake is None


def test_the_counter_is_summed_over_codes_and_a_first_read_is_a_baseline() -> None:
    text = (
        "# TYPE emotivoice_speech_requests_total counter\n"
        'emotivoice_speech_requests_total{code="200"} 7.0\n'
        'emotivoice_speech_requests_total{code="503"} 2.0\n'
        'emotivoice_speech_requests_dropped_total{reason="deadline"} 5.0\n'
    )
    assert fb.requests_answered(text) == 9.0
    assert not fb.counters_rose({}, {"pod-a": 9.0})
    assert not fb.counters_rose({"pod-a": 9.0}, {"pod-a": 9.0})
    assert fb.counters_rose({"pod-a": 9.0}, {"pod-a": 10.0})
    assert fb.counters_rose({"pod-a": 9.0}, {"pod-a": 1.0})  # restarted, then answered
    assert not fb.counters_rose({"pod-a": 9.0}, {"pod-a": 0.0})  # restarted, nothing since


# --- the contracts with the server ----------------------------------------------------------


def test_the_operator_reads_the_counter_the_server_writes_and_names_the_pool_it_reads() -> None:
    """The wake reads the server's own exposition: its counter's name and labels as the server
    writes them; the pool variable the operator sets is the one the server reads."""
    from prometheus_client import generate_latest

    from emotivoice_operator.render import names
    from emotivoice_server import metrics, settings

    served = metrics.create(lambda: None)
    served.requests.labels(code="200").inc(3)
    served.requests.labels(code="truncated").inc()
    assert fb.requests_answered(generate_latest(served.registry).decode()) == 4.0
    assert names.SERVER_POOL_ENV == settings.ENV_POOL
