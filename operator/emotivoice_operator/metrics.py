"""The operator's own Prometheus metrics (served when EMOTIVOICE_METRICS_PORT is set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COLD_START_SECONDS = Histogram(
    "emotivoice_cold_start_seconds",
    "Server pod start to Ready (model loaded and warmed up), per EmotiVoiceService",
    ["namespace", "name"],
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
WARM_FLOOR = Gauge(
    "emotivoice_warm_floor_replicas", "Replica floor in force", ["namespace", "name"]
)
CHILD_APPLIES = Counter(
    "emotivoice_child_applies_total",
    "Children checked per reconcile, by what had to be done (unchanged means no API write)",
    ["kind", "action"],
)
STATUS_WRITES = Counter("emotivoice_status_writes_total", "Status patches written")
