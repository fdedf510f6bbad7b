"""A real Prometheus scraping the real node's pods: every expression of the chart's alerts and
dashboard evaluates, and every metric each one names has series (issue 32: no expression left
naming a metric that does not exist).

Prometheus runs on the host (127.0.0.1), discovers the pods through the test cluster's API
server (kubernetes_sd_configs with its kubeconfig) and scrapes them at their IPs on the node's
bridge, labelled as the chart's PodMonitor and a prometheus-operator ServiceMonitor label them:
the servers `namespace`, `pod` and `service` (the pod's app.kubernetes.io/instance: the
EmotiVoiceService), the operator with its own `namespace`/`name` labels kept (honor_labels, as
the chart's ServiceMonitor sets).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import Cluster
from tests.support.monitoring import alert_rules, dashboard_queries, metric_names
from tests.support.operator_process import wait_for
from tests.support.prometheus import Prometheus
from tests.support.services import create_service, evs_manifest
from tests.support.store import ModelStore

pytestmark = pytest.mark.timeout(900)

NAME = "tts"
SCRAPE_INTERVAL = "5s"
REQUESTS = 4


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-prometheus-caches")


def _config(cluster: Cluster, namespace: str, system: str) -> str:
    def pods(job: str, namespaces: list[str], keep: dict[str, str], **extra: object) -> dict:
        relabel = [
            {"source_labels": [source], "regex": value, "action": "keep"}
            for source, value in keep.items()
        ] + [
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]  # fmt: skip
        return {
            "job_name": job,
            "scrape_interval": SCRAPE_INTERVAL,
            "kubernetes_sd_configs": [
                {
                    "role": "pod",
                    "kubeconfig_file": str(cluster.kubeconfig),
                    "namespaces": {"names": namespaces},
                }
            ],
            "relabel_configs": relabel + list(extra.pop("relabel", [])),
            **extra,
        }

    servers = pods(
        "emotivoice-servers",
        [namespace],
        {
            "__meta_kubernetes_pod_label_app_kubernetes_io_component": "server",
            "__meta_kubernetes_pod_container_port_name": "http",
        },
        relabel=[
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                "target_label": "service",
            }
        ],
    )
    operator = pods(
        "emotivoice-operator",
        [system],
        {
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": "emotivoice-operator",
            "__meta_kubernetes_pod_container_port_name": "metrics",
        },
        honor_labels=True,
    )
    return yaml.safe_dump({"global": {"scrape_interval": SCRAPE_INTERVAL},
                           "scrape_configs": [servers, operator]})  # fmt: skip


@pytest.fixture
def prometheus(
    real_cluster: Cluster, operator_release: str, e2e_namespace: str, tmp_path: Path
) -> Iterator[Prometheus]:
    prom = Prometheus(
        data=tmp_path / "prometheus",
        log_path=tmp_path / "prometheus.log",
        config=_config(real_cluster, e2e_namespace, operator_release),
    )
    try:
        prom.start()
        yield prom
    finally:
        prom.stop()  # by its pid (Popen.terminate, then kill)


def _speak(url: str, text: str) -> None:
    body = json.dumps({"model": "emotivoice", "input": text, "voice": "8051",
                       "response_format": "wav"}).encode()  # fmt: skip
    request = urllib.request.Request(
        f"{url}/v1/audio/speech", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        response.read()


def test_every_alert_and_dashboard_expression_reads_series_of_a_real_scrape(
    real_cluster: Cluster,
    operator_release: str,
    model_store: ModelStore,
    e2e_namespace: str,
    cache_root: Path,
    prometheus: Prometheus,
) -> None:
    began = time.monotonic()
    ns = e2e_namespace
    # A window (window_active, its lead, the miss counters) and a fallback that does not exist
    # (the routing gauge and the wake counter; traffic stays on the service's own pods).
    pool = {"timeZone": "UTC", "windows": [
        {"name": "night", "start": "03:00", "end": "04:00", "leadTime": "15m", "replicas": 1}]}  # fmt: skip
    manifest = evs_manifest(NAME, model_store, warmPool=pool, fallback={"service": "tts-absent"})
    create_service(real_cluster, ns, manifest, cache_root)
    wait_for(
        lambda: (real_cluster.get_json("evs", NAME, "-n", ns)["status"].get("coldStarts") or {})
        .get("count", 0) >= 1,
        timeout=60, what="the cold start counted",
    )  # fmt: skip
    svc = real_cluster.get_json("service", NAME, "-n", ns)
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
    for i in range(REQUESTS):  # the same text twice: embedding cache hits as well as misses
        _speak(url, f"Scraped request {i // 2}.")

    variables = {"namespace": ns, "service": NAME}
    expressions = [(r["alert"], r["expr"]) for r in alert_rules()]
    expressions += dashboard_queries(variables)
    names = sorted({m for _, expr in expressions for m in metric_names(expr)})
    assert len(names) >= 20, names

    def missing() -> list[str]:
        return [
            m for m in names
            if not prometheus.query(f'count({{__name__="{m}", namespace="{ns}"}})')
        ]  # fmt: skip

    # Scraped every 5 s: the requests' series appear within a few scrapes.
    deadline = time.monotonic() + 90
    while (absent := missing()) and time.monotonic() < deadline:
        time.sleep(2)
    assert not absent, f"metrics with no series in {ns}: {absent}; targets: " + str(
        [(t["labels"], t["health"], t.get("lastError")) for t in prometheus.targets()]
    )
    # The labels the alerts join on (docs/reference/alerts.md).
    [server] = prometheus.query(f'emotivoice_queue_capacity{{namespace="{ns}"}}')
    assert server["metric"]["service"] == NAME and server["metric"]["pod"].startswith(NAME)
    [floor] = prometheus.query(f'emotivoice_warm_floor_replicas{{namespace="{ns}"}}')
    assert floor["metric"]["name"] == NAME, floor
    # Every expression evaluates (query raises with Prometheus's own error otherwise).
    for where, expr in expressions:
        try:
            prometheus.query(expr)
        except RuntimeError as exc:
            pytest.fail(f"{where}: {exc}")
    # The joins meet: the server's request counter renamed to the operator's `name`, matched
    # against the operator's max (what EmotiVoiceRefusedAtMax does, without rate or threshold).
    joined = prometheus.query(
        f"sum by (namespace, name) (label_replace(emotivoice_speech_requests_total"
        f'{{namespace="{ns}"}}, "name", "$1", "service", "(.+)")) and on (namespace, name) '
        f"max by (namespace, name) (emotivoice_max_replicas)"
    )
    assert [r["metric"] for r in joined] == [{"namespace": ns, "name": NAME}], joined
    print(f"\n{len(expressions)} expressions over {len(names)} metrics against a real scrape, "
          f"in {time.monotonic() - began:.0f} s")  # fmt: skip
