"""`Endpoints.admitted`: an admitted request's slot is freed exactly once, whichever way the
block ends, or by the stream it was handed to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emotivoice_server import metrics as metrics_module
from emotivoice_server.admission import Admission
from emotivoice_server.endpoints import Endpoints
from emotivoice_server.model_thread import Ticket
from emotivoice_server.settings import ServerSettings


def _endpoints() -> tuple[Endpoints, Admission, Any]:
    metrics = metrics_module.create(lambda: None)
    admission = Admission(max_queue=1)
    settings = ServerSettings(model_dir=Path("/models/m"))
    host: Any = None  # `admitted` never asks the host
    return Endpoints(host, metrics, admission, settings), admission, metrics


def _depth_gauge(metrics: Any) -> float:
    return metrics.registry.get_sample_value("emotivoice_queue_depth")


def _enter(admission: Admission) -> Ticket:
    ticket = Ticket(deadline=0.0)
    assert admission.try_enter(ticket)
    return ticket


def test_the_slot_is_freed_when_the_block_ends_or_raises() -> None:
    endpoints, admission, metrics = _endpoints()
    with endpoints.admitted(_enter(admission)):
        assert admission.depth == 1
    assert admission.depth == 0 and _depth_gauge(metrics) == 0
    with pytest.raises(KeyError), endpoints.admitted(_enter(admission)):
        raise KeyError("boom")
    assert admission.depth == 0


def test_a_slot_freed_early_is_not_freed_again() -> None:
    endpoints, admission, _ = _endpoints()
    other = _enter(admission)  # a second request: a double leave would free its slot
    with endpoints.admitted(_enter(admission)) as slot:
        slot.free()
        assert admission.depth == 1
    assert admission.depth == 1
    admission.leave(other)


def test_a_handed_over_slot_is_freed_by_its_new_owner_only() -> None:
    endpoints, admission, metrics = _endpoints()
    with endpoints.admitted(_enter(admission)) as slot:
        slot.hand_over()
    assert admission.depth == 1  # the stream still holds it
    slot.free()
    slot.free()
    assert admission.depth == 0 and _depth_gauge(metrics) == 0
