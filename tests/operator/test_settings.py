"""OperatorSettings.from_env: the chart's environment read once, refused with the variable's
name when a value cannot be what it says."""

from __future__ import annotations

import pytest

from emotivoice_operator.settings import OperatorSettings


def test_unset_variables_give_the_dataclass_defaults() -> None:
    assert OperatorSettings.from_env({}) == OperatorSettings()


def test_numbers_are_read() -> None:
    settings = OperatorSettings.from_env(
        {
            "EMOTIVOICE_TIMER_INTERVAL": "2.5",
            "EMOTIVOICE_RECONCILE_WORKERS": "8",
            "EMOTIVOICE_METRICS_PORT": "9090",
        }
    )
    assert (settings.timer_interval, settings.reconcile_workers, settings.metrics_port) == (
        2.5,
        8,
        9090,
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("EMOTIVOICE_RECONCILE_WORKERS", "four", "must be a number"),
        ("EMOTIVOICE_RECONCILE_WORKERS", "0", "at least 1"),
        ("EMOTIVOICE_RECONCILE_WORKERS", "2.5", "must be a number"),
        ("EMOTIVOICE_TIMER_INTERVAL", "0", "more than 0"),
        ("EMOTIVOICE_TIMER_INTERVAL", "-3", "more than 0"),
        ("EMOTIVOICE_METRICS_PORT", "-1", "at least 0"),
    ],
)
def test_a_bad_number_names_its_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        OperatorSettings.from_env({name: value})
    assert name in str(caught.value) and repr(value) in str(caught.value)


def test_an_older_replica_has_the_higher_peering_priority() -> None:
    """kopf pauses every replica that sees a peer of the same priority: replicas must differ,
    and the oldest leads (a replica started later waits)."""
    from emotivoice_operator.main import peering_priority

    older, newer = peering_priority(1_800_000_000.000), peering_priority(1_800_000_000.001)
    assert older > newer > 0
    assert peering_priority(1_800_000_000.0) == peering_priority(1_800_000_000.0)
