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
