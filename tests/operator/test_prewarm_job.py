"""``warm_request``: what a window's pre-warm job asks for, at fixed instants (no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from emotivoice_operator.prewarm_job import UnknownWindowError, warm_request
from tests.support.invalid_specs import valid_resource

# valid_resource's window: Mondays 09:00-12:00 Asia/Shanghai (01:00-04:00Z), 2 replicas, lead 10m.
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


def test_inside_the_window_the_request_ends_with_it() -> None:
    request = warm_request(valid_resource(), "morning", MONDAY.replace(hour=0, minute=50))
    assert request.to_status() == {"replicas": 2, "expiresAt": "2026-01-05T04:00:00Z"}


def test_outside_it_the_request_holds_lead_plus_duration_from_now() -> None:
    request = warm_request(valid_resource(), "morning", MONDAY.replace(hour=6))
    assert request.to_status() == {"replicas": 2, "expiresAt": "2026-01-05T09:10:00Z"}


def test_an_unknown_window_is_an_error_naming_the_known_ones_not_an_exit() -> None:
    with pytest.raises(UnknownWindowError, match=r"'evening' is not in .*known: morning"):
        warm_request(valid_resource(), "evening", MONDAY)
