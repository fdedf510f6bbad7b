"""Read-your-writes (controller/expectations.py): the answer to a write stands until the watch
shows that version or a later one."""

from __future__ import annotations

from typing import Any

from emotivoice_operator.controller.expectations import Expectations

OWNER = ("ns", "tts")


def _obj(version: str, replicas: int) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "tts", "resourceVersion": version},
        "spec": {"replicas": replicas},
    }


def test_the_answer_stands_until_the_watch_catches_up() -> None:
    expectations = Expectations()
    assert expectations.newest(OWNER, "Deployment", "tts", _obj("5", 1)) == _obj("5", 1)
    expectations.expect(OWNER, _obj("7", 2))
    assert expectations.newest(OWNER, "Deployment", "tts", _obj("5", 1)) == _obj("7", 2)
    assert expectations.newest(OWNER, "Deployment", "tts", None) == _obj("7", 2)
    assert expectations.newest(OWNER, "Deployment", "tts", _obj("7", 2)) == _obj("7", 2)
    # Caught up: the watch alone speaks now, even if it goes back to an older copy.
    assert expectations.newest(OWNER, "Deployment", "tts", _obj("5", 1)) == _obj("5", 1)


def test_a_deletion_or_a_deleted_service_drops_the_answer() -> None:
    expectations = Expectations()
    expectations.expect(OWNER, _obj("7", 2))
    expectations.deletion_observed("ns", "tts", "Deployment", "tts")
    assert expectations.newest(OWNER, "Deployment", "tts", None) is None
    expectations.expect(OWNER, _obj("8", 2))
    expectations.forget("ns", "tts")
    assert expectations.newest(OWNER, "Deployment", "tts", None) is None
