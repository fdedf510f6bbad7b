"""The operator's own Prometheus metrics (served when EMOTIVOICE_METRICS_PORT is set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COLD_START_SECONDS = Histogram(
    "emotivoice_cold_start_seconds",
    "Server pod created to Ready (model loaded and warmed up), per EmotiVoiceService",
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
# A pass's wall time (its API requests included); the count is the passes run, which tells
# how well triggers coalesce (a new service converges in two or three).
RECONCILE_SECONDS = Histogram(
    "emotivoice_reconcile_seconds",
    "Wall time of one reconcile pass of one EmotiVoiceService",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STATUS_WRITES = Counter("emotivoice_status_writes_total", "Status patches written")
COLD_START_PHASE_SECONDS = Histogram(
    "emotivoice_cold_start_phase_seconds",
    "Seconds each cold start spent per phase (scheduling, image, retry, fetch, import, load, "
    "warmup, probe; server when the server could not be asked): tuning/phases.py",
    ["namespace", "name", "phase"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
COLD_STARTS = Counter(
    "emotivoice_cold_starts_total",
    "Cold starts by what the fetch step found (warm, waited, downloaded, unknown) and whether "
    "they were under way while a window's occurrence was open (window: in) or not (out)",
    ["namespace", "name", "cache", "window"],
)
WINDOW_MISSES = Counter(
    "emotivoice_window_misses_total",
    "Window starts at which the warm floor's replicas were not Ready",
    ["namespace", "name", "window"],
)
WINDOW_STARTS_MET = Counter(
    "emotivoice_window_starts_met_total",
    "Window starts at which the warm floor's replicas were Ready",
    ["namespace", "name", "window"],
)
LEAD_TIME_SECONDS = Gauge(
    "emotivoice_lead_time_seconds",
    "The lead of leadTime: auto windows in force (initial or learned)",
    ["namespace", "name"],
)
ROUTED_TO_FALLBACK = Gauge(
    "emotivoice_routed_to_fallback",
    "1 while the Service sends the service's traffic to its fallback's pods (spec.fallback)",
    ["namespace", "name", "pool"],
)
WAKES = Counter(
    "emotivoice_wakes_total",
    "Floors raised to 1 by requests the fallback answered while the floor was 0",
    ["namespace", "name"],
)
# The cost of each window (tuning/cost.py): what its warm spans held and what that bought.
WINDOW_WARM_REPLICA_SECONDS = Counter(
    "emotivoice_window_warm_replica_seconds",
    "Ready replica-seconds while the window was warm (its lead included)",
    ["namespace", "name", "window"],
)
WINDOW_SERVED_REPLICA_SECONDS = Counter(
    "emotivoice_window_served_replica_seconds",
    "Seconds the servers' model threads spent on calls while the window was warm",
    ["namespace", "name", "window"],
)
WINDOW_LEAD_REQUESTS = Counter(
    "emotivoice_window_lead_requests",
    "Speech requests answered during the window's lead: cold starts the lead spared",
    ["namespace", "name", "window"],
)
WINDOW_COLD_STARTS = Counter(
    "emotivoice_window_cold_starts",
    "Cold starts under way while the window's occurrence was open",
    ["namespace", "name", "window"],
)
WINDOW_UNACCOUNTED_SECONDS = Counter(
    "emotivoice_window_unaccounted_seconds",
    "Seconds of the window's warm spans no operator accounted (it was not running)",
    ["namespace", "name", "window"],
)
# What the chart's alerts and dashboard join with the servers' series (docs/reference/alerts.md).
READY_REPLICAS = Gauge(
    "emotivoice_ready_replicas",
    "Ready replicas of the service's workload (status.readyReplicas)",
    ["namespace", "name"],
)
MAX_REPLICAS = Gauge(
    "emotivoice_max_replicas",
    "Most replicas the pool may have: the HPA's maxReplicas (spec.replicas.max)",
    ["namespace", "name"],
)
WINDOW_ACTIVE = Gauge(
    "emotivoice_window_active",
    "1 while the window is warm (its pre-warm lead included), 0 otherwise",
    ["namespace", "name", "window"],
)
WINDOW_LEAD_SECONDS = Gauge(
    "emotivoice_window_lead_seconds",
    "The lead in force for each window: its leadTime, or the learned lead of leadTime: auto",
    ["namespace", "name", "window"],
)
IMAGE_LEAD_SECONDS = Gauge(
    "emotivoice_image_lead_seconds",
    "The image lead in force of warmPool.prePull (fixed, initial or learned from measured pulls)",
    ["namespace", "name"],
)
PREPULLED_NODES = Gauge(
    "emotivoice_image_prepulled_nodes",
    "Nodes the current (or last) image pre-pull put the server image on",
    ["namespace", "name"],
)
PLACEHOLDERS = Gauge(
    "emotivoice_placeholders",
    "Capacity placeholder pods of the service that exist now (Pending or holding a node)",
    ["namespace", "name"],
)
FETCH_FAILING_PODS = Gauge(
    "emotivoice_fetch_failing_pods",
    "Server pods whose model download (the fetch-model init container) failed its last try",
    ["namespace", "name"],
)

# Every metric labelled by service (namespace and name first), and those of them labelled by
# window name too: a deleted service's (or window's) label sets are removed, so a gauge does not
# keep reporting the last value of something that no longer exists.
PER_SERVICE = (
    COLD_START_SECONDS,
    WARM_FLOOR,
    COLD_START_PHASE_SECONDS,
    COLD_STARTS,
    WINDOW_MISSES,
    WINDOW_STARTS_MET,
    LEAD_TIME_SECONDS,
    ROUTED_TO_FALLBACK,
    WAKES,
    READY_REPLICAS,
    MAX_REPLICAS,
    WINDOW_ACTIVE,
    WINDOW_LEAD_SECONDS,
    IMAGE_LEAD_SECONDS,
    PREPULLED_NODES,
    PLACEHOLDERS,
    FETCH_FAILING_PODS,
    WINDOW_WARM_REPLICA_SECONDS,
    WINDOW_SERVED_REPLICA_SECONDS,
    WINDOW_LEAD_REQUESTS,
    WINDOW_COLD_STARTS,
    WINDOW_UNACCOUNTED_SECONDS,
)
PER_WINDOW = (
    WINDOW_MISSES,
    WINDOW_STARTS_MET,
    WINDOW_ACTIVE,
    WINDOW_LEAD_SECONDS,
    WINDOW_WARM_REPLICA_SECONDS,
    WINDOW_SERVED_REPLICA_SECONDS,
    WINDOW_LEAD_REQUESTS,
    WINDOW_COLD_STARTS,
    WINDOW_UNACCOUNTED_SECONDS,
)


def _label_sets(metric: Counter | Gauge | Histogram) -> set[tuple[str, ...]]:
    """The label values of every child ``metric`` holds, in its label names' order."""
    names = metric._labelnames  # prometheus_client keeps them only there
    out = set()
    for family in metric.collect():
        for sample in family.samples:
            if all(n in sample.labels for n in names):
                out.add(tuple(sample.labels[n] for n in names))
    return out


def forget_service(namespace: str, name: str) -> None:
    """Removes every label set of a service that is gone."""
    for metric in PER_SERVICE:
        for values in _label_sets(metric):
            if values[:2] == (namespace, name):
                metric.remove(*values)


def forget_windows(namespace: str, name: str, keep: set[str]) -> None:
    """Removes the label sets of the service's windows that are no longer in its spec."""
    for metric in PER_WINDOW:
        for values in _label_sets(metric):
            if values[:2] == (namespace, name) and values[2] not in keep:
                metric.remove(*values)
