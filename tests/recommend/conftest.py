"""A real Prometheus holding five weeks of generated traffic (tests/support/traffic_history.py),
backfilled by promtool (cached by content: the first run takes about a minute)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import traffic_history
from tests.support.prometheus import Prometheus, backfill


@pytest.fixture(scope="session")
def traffic() -> traffic_history.Traffic:
    return traffic_history.generate()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, traffic) -> Iterator[Prometheus]:
    work = tmp_path_factory.mktemp("prometheus")
    data = backfill(traffic_history.openmetrics(traffic), work / "data")
    server = Prometheus(data=data, log_path=work / "prometheus.log").start()
    try:
        yield server
    finally:
        server.stop()
