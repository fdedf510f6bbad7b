"""The fault suite (marker `faults`; `make test-faults`): the cluster itself misbehaves while a
service converges and while a window opens, and the damage is counted (tests/support/faults.py).

Every test here is marked `faults` and `cluster`; the real-node ones also `e2e` (they use the
end-to-end suite's fixtures, tests/e2e/conftest.py, and are skipped where no real node runs).
`make test` leaves the suite out (`-m "not faults"`): it restarts the control plane under every
other test session sharing the cluster.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.cluster)
