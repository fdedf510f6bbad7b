"""Which cache scope applies (cache_scope.decide_scope): explicit, the default, an old claim kept."""

from __future__ import annotations

from typing import Any

import pytest

from emotivoice_operator.cache_scope import decide_scope
from emotivoice_operator.crd.spec import SpecError, parse_spec


def _spec(max_replicas: int = 3, **cache: Any):
    return parse_spec(
        {
            "model": {"source": {"uri": "s3://models/emotivoice/v1"}, "cache": cache},
            "replicas": {"min": 1, "max": max_replicas},
        }
    )


def test_unset_scope_is_per_replica_for_a_new_service() -> None:
    decision = decide_scope(_spec(), "tts", shared_claim_exists=False)
    assert decision.scope == "PerReplica"
    assert decision.warning is None
    assert "unset" in decision.reason


def test_unset_scope_keeps_an_existing_shared_claim_and_says_so() -> None:
    decision = decide_scope(_spec(accessMode="ReadWriteMany"), "tts", shared_claim_exists=True)
    assert decision.scope == "Shared"
    assert "tts-model" in decision.reason and "PerReplica" in decision.reason


@pytest.mark.parametrize("scope", ["PerReplica", "Shared", "Ephemeral"])
def test_an_explicit_scope_wins_over_what_exists(scope: str) -> None:
    for exists in (False, True):
        assert decide_scope(_spec(scope=scope), "tts", exists).scope == scope


def test_shared_read_write_once_across_replicas_is_a_warning() -> None:
    decision = decide_scope(_spec(scope="Shared"), "tts", False)
    assert decision.warning and "ReadWriteOnce" in decision.warning
    assert "PerReplica" in decision.warning
    # One replica at most, or RWX storage: nothing to warn about.
    assert decide_scope(_spec(1, scope="Shared"), "tts", False).warning is None
    assert (
        decide_scope(_spec(scope="Shared", accessMode="ReadWriteMany"), "tts", False).warning
        is None
    )


def test_one_pod_claims_cannot_be_shared_by_several_replicas() -> None:
    """The schema refuses an explicit Shared; an unset scope kept Shared is refused here."""
    with pytest.raises(SpecError) as err:
        decide_scope(_spec(accessMode="ReadWriteOncePod"), "tts", shared_claim_exists=True)
    assert err.value.field == "model.cache.accessMode"
    assert "replicas.max" in err.value.problem
    # Each replica alone on its own claim: what ReadWriteOncePod is for.
    assert decide_scope(_spec(accessMode="ReadWriteOncePod"), "tts", False).scope == "PerReplica"


def test_the_schema_admits_the_combinations_that_work() -> None:
    from tests.support.crd_validation import validate
    from tests.support.invalid_specs import valid_resource

    for cache, most in (
        ({"scope": "PerReplica", "accessMode": "ReadWriteOncePod"}, 3),
        ({"accessMode": "ReadWriteOncePod"}, 3),  # unset: the operator decides (above)
        ({"scope": "Shared", "accessMode": "ReadWriteOncePod"}, 1),
        ({"scope": "PerReplica", "retainOnDelete": True}, 3),
        ({"scope": "Ephemeral"}, 3),
    ):
        body = valid_resource()
        body["spec"]["model"]["cache"] = cache
        body["spec"]["replicas"] = {"min": 1, "max": most}
        body["spec"]["warmPool"]["windows"][0]["replicas"] = most
        assert validate(body) == [], cache
