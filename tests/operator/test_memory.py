"""Status read back as the operator's memory (reconcile/memory.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from emotivoice_operator.reconcile.memory import Memory, lead_in_force
from emotivoice_operator.windows import WarmRequest

LATER = datetime(2030, 1, 1, 12, tzinfo=UTC)


def test_an_empty_status_remembers_nothing() -> None:
    for status in (None, {}):
        memory = Memory.from_status(status)
        assert memory.warm_requests == {} and memory.malformed_requests == []
        assert memory.cold_starts is None and memory.cold_start_seconds == []
        assert memory.lead_in_force is None and memory.lead_time == {}
        assert memory.misses is None
        assert (memory.claims, memory.deleted_claims) == (None, None)
        assert (memory.message, memory.phase) == (None, None)
        assert memory.condition_message("CacheReachable") is None


def test_each_section_is_read_back() -> None:
    status = {
        "phase": "Ready",
        "message": "2 of 2 replicas ready",
        "warmRequests": {
            "morning": {"replicas": 3, "expiresAt": "2030-01-01T12:00:00Z"},
            "broken": {"replicas": "many"},
        },
        "coldStarts": {"count": 2, "recent": [{"seconds": 12.5}, {"seconds": "x"}, {}]},
        "leadTime": {"mode": "learned", "seconds": 600},
        "misses": {"count": 1},
        "cache": {"claims": ["a"], "deletedClaims": ["b"]},
        "conditions": [{"type": "CacheReachable", "message": "one node only"}],
    }
    memory = Memory.from_status(status)
    assert memory.warm_requests == {"morning": WarmRequest(3, LATER)}
    assert memory.malformed_requests == ["broken"]
    assert memory.cold_start_seconds == [12.5]  # unreadable samples are skipped
    assert memory.lead_in_force == timedelta(minutes=10)
    assert memory.misses == {"count": 1}
    assert (memory.claims, memory.deleted_claims) == (["a"], ["b"])
    assert memory.condition_message("CacheReachable") == "one node only"
    assert (memory.phase, memory.message) == ("Ready", "2 of 2 replicas ready")


def test_only_a_learned_lead_is_in_force() -> None:
    assert lead_in_force({"leadTime": {"mode": "initial", "seconds": 600}}) is None
    assert lead_in_force({"leadTime": {"mode": "learned"}}) is None
    assert lead_in_force({"leadTime": {"mode": "learned", "seconds": "60"}}) == timedelta(minutes=1)


def test_request_fixes_remove_unknown_and_unreadable_and_cap_the_rest() -> None:
    memory = Memory.from_status(
        {
            "warmRequests": {
                "kept": {"replicas": 2, "expiresAt": "2030-01-01T12:00:00Z"},
                "capped": {"replicas": 9, "expiresAt": "2030-01-01T12:00:00Z"},
                "gone": {"replicas": 1, "expiresAt": "2030-01-01T12:00:00Z"},
                "broken": "?",
            }
        }
    )
    honoured = {"kept": WarmRequest(2, LATER), "capped": WarmRequest(4, LATER)}
    assert memory.request_fixes(honoured) == {
        "broken": None,
        "gone": None,
        "capped": {"replicas": 4, "expiresAt": "2030-01-01T12:00:00Z"},
    }
