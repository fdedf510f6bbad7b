"""``recommend NAME -n NAMESPACE`` against a real API server and a real Prometheus: the service,
its recorded cold starts and the EmotiVoiceCalendar it names are read through KUBECONFIG as a
user's shell would, the history from Prometheus (backfilled with the generated five weeks,
tests/support/traffic_history.py).

No operator runs: the status is written through the status subresource, as the operator writes
it, so the API server prunes what the CRD does not declare."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import yaml

from emotivoice_operator.crd import CALENDAR_KIND, api_version
from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.tuning.lead import learn_lead
from emotivoice_operator.windows.model import LeadBounds, format_duration
from tests.support import traffic_history as th
from tests.support.cluster import Cluster
from tests.support.operator_process import install_crd
from tests.support.prometheus import Prometheus, backfill

pytestmark = pytest.mark.cluster

# Seven cold starts (at least autoLeadTime.minStarts, 5 by default): the proposed lead is their
# p95 plus the margin, by the operator's own rule (tuning/lead.py), which the test calls.
COLD_STARTS = [40.0, 45.0, 50.0, 55.0, 60.0, 70.0, 120.0]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    work = tmp_path_factory.mktemp("prometheus")
    data = backfill(th.openmetrics(th.generate()), work / "data")
    server = Prometheus(data=data, log_path=work / "prometheus.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def calendar(cluster: Cluster) -> Iterator[str]:
    install_crd(cluster)
    name = f"holidays-{uuid.uuid4().hex[:8]}"
    cluster.apply(
        {
            "apiVersion": api_version(),
            "kind": CALENDAR_KIND,
            "metadata": {"name": name},
            "spec": {"dates": [{"date": th.HOLIDAY.isoformat(), "name": "Allerheiligen"}]},
        }
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "emotivoicecalendars", name, "--ignore-not-found")


def test_recommend_reads_the_service_its_cold_starts_and_its_calendar(
    cluster: Cluster, namespace: str, prometheus: Prometheus, calendar: str
) -> None:
    body = th.manifest()
    body["metadata"] = {"name": th.SERVICE, "namespace": namespace}
    body["spec"]["warmPool"]["calendars"] = [calendar]
    cluster.apply(body, namespace=namespace)
    recent = [
        {"pod": f"{th.SERVICE}-{i}", "at": "2027-11-05T08:00:00Z", "seconds": s}
        for i, s in enumerate(COLD_STARTS)
    ]
    cluster.kubectl(
        "patch", "evs", th.SERVICE, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"coldStarts": {"count": len(recent), "recent": recent}}}),
    )  # fmt: skip
    # The history carries the generator's labels (namespace "voice"), not the test namespace's:
    # --selector is how a setup with other labels points the command at its series.
    selector = f'namespace="{th.NAMESPACE}",service="{th.SERVICE}"'
    result = subprocess.run(
        [sys.executable, "-m", "emotivoice_operator.main", "recommend", th.SERVICE,
         "-n", namespace, "--prometheus", prometheus.url, "--weeks", "5",
         "--end", th.end_instant().isoformat(), "--selector", selector],
        env=cluster.env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # The calendar read from the cluster: the holiday is left out of the estimate as a dated
    # day (not merely "looks like a holiday"), and the proposal keeps naming the calendar.
    assert f"left out {th.HOLIDAY.isoformat()} (Mon): in calendar {calendar}" in out, out
    pool = yaml.safe_load(out)["warmPool"]
    assert pool["calendars"] == [calendar]
    # The lead from the recorded cold starts, by the operator's own rule.

    bounds = LeadBounds.from_spec(parse_spec(body["spec"]).warm_pool.auto_lead_time)
    expected = format_duration(learn_lead(bounds, COLD_STARTS, None).lead)
    assert {w["leadTime"] for w in pool["windows"]} == {expected}, out
    assert f"p95 of {len(COLD_STARTS)} cold starts" in out


def test_recommend_names_a_missing_service(cluster: Cluster, namespace: str) -> None:
    install_crd(cluster)
    result = subprocess.run(
        [sys.executable, "-m", "emotivoice_operator.main", "recommend", "nope", "-n", namespace,
         "--prometheus", "http://127.0.0.1:9"],
        env=cluster.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "nope" in result.stderr and result.stderr.count("\n") == 1, result.stderr
