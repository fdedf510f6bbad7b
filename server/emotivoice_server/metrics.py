"""Prometheus metrics of one server process, in their own registry (one per app instance).

Names are prefixed `emotivoice_`. Start-up is reported phase by phase, so a slow cold start
shows where its time went, and from process start, which is what a user waiting on a scale-up
experiences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
PHASES = ("starting", "verifying", "importing", "loading", "warming", "ready", "failed")


class _GpuMemoryCollector(Collector):
    """Reads CUDA memory at scrape time; reports nothing until the model is on a GPU."""

    def __init__(self, device: Callable[[], str | None]) -> None:
        self._device = device

    def collect(self) -> Iterator[GaugeMetricFamily]:
        device = self._device()
        if not device or not device.startswith("cuda"):
            return
        import torch

        family = GaugeMetricFamily(
            "emotivoice_gpu_memory_bytes", "CUDA memory held by this process", labels=["kind"]
        )
        family.add_metric(["allocated"], float(torch.cuda.memory_allocated(device)))
        family.add_metric(["reserved"], float(torch.cuda.memory_reserved(device)))
        family.add_metric(["max_allocated"], float(torch.cuda.max_memory_allocated(device)))
        yield family


@dataclass
class ServerMetrics:
    """Every metric the server exports; created by `create()`."""

    registry: CollectorRegistry
    phase_seconds: Gauge
    phase: Gauge
    load_step_seconds: Gauge
    process_start_to_loaded: Gauge
    process_start_to_ready: Gauge
    ready: Gauge
    warmup_requests: Counter
    request_seconds: Histogram
    first_audio_seconds: Histogram
    first_request_seconds: Gauge
    requests: Counter
    audio_seconds: Counter
    requests_dropped: Counter
    queue_depth: Gauge
    queue_capacity: Gauge
    cache_hits: Counter
    cache_misses: Counter
    cache_entries: Gauge
    embedding_seconds: Histogram
    model_info: Info

    def set_phase(self, current: str) -> None:
        for name in PHASES:
            self.phase.labels(phase=name).set(1.0 if name == current else 0.0)


class ModelThreadCollector(Collector):
    """Seconds the model thread spent on calls, and how many, read at scrape time: the model's
    utilization, and (busy / calls) its service time, which grows when HTTP threads take the
    CPU or the GIL from it."""

    def __init__(self, stats: Callable[[], tuple[float, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        busy, calls = self._stats()
        yield CounterMetricFamily(
            "emotivoice_model_busy_seconds", "Wall seconds the model thread spent on calls", busy
        )
        yield CounterMetricFamily("emotivoice_model_calls", "Calls the model thread ran", calls)


def create(device: Callable[[], str | None]) -> ServerMetrics:
    """A fresh registry with every metric; `device` tells the GPU collector where the model is."""
    # `*_created` series double the output and say nothing a scraper needs here.
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=True)
    metrics = ServerMetrics(
        registry=registry,
        phase_seconds=Gauge(
            "emotivoice_startup_phase_seconds",
            "Duration of each start-up phase (verifying, importing, loading, warming)",
            ["phase"],
            registry=registry,
        ),
        phase=Gauge(
            "emotivoice_startup_phase",
            "1 for the current start-up phase, 0 for the others",
            ["phase"],
            registry=registry,
        ),
        load_step_seconds=Gauge(
            "emotivoice_load_step_seconds",
            "Where the loading phase spent its time, as the model package reports it",
            ["step"],
            registry=registry,
        ),
        process_start_to_loaded=Gauge(
            "emotivoice_process_start_to_loaded_seconds",
            "Seconds from process start until the model was loaded",
            registry=registry,
        ),
        process_start_to_ready=Gauge(
            "emotivoice_process_start_to_ready_seconds",
            "Seconds from process start until ready (loaded and warmed up)",
            registry=registry,
        ),
        ready=Gauge("emotivoice_ready", "1 once loaded and warmed up", registry=registry),
        warmup_requests=Counter(
            "emotivoice_warmup_synthesis",
            "Warm-up syntheses run before ready",
            registry=registry,
        ),
        request_seconds=Histogram(
            "emotivoice_speech_request_seconds",
            "Time to synthesize a whole speech response",
            ["response_format"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        first_audio_seconds=Histogram(
            "emotivoice_time_to_first_audio_seconds",
            "Time from request arrival to the first audio bytes being ready to send",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        first_request_seconds=Gauge(
            "emotivoice_first_request_seconds",
            "Latency of the first user speech request after ready",
            registry=registry,
        ),
        requests=Counter(
            "emotivoice_speech_requests",
            "Speech requests by HTTP status code; a stream that ended early (model error or client "
            "gone after the 200 went out) counts as code=truncated, a client gone before its "
            "answer as code=499",
            ["code"],
            registry=registry,
        ),
        requests_dropped=Counter(
            "emotivoice_speech_requests_dropped",
            "Admitted speech requests that never reached the model: their client hung up "
            "(client_gone) or they waited past their deadline (deadline)",
            ["reason"],
            registry=registry,
        ),
        audio_seconds=Counter(
            "emotivoice_audio_seconds",
            "Seconds of audio synthesized for users",
            registry=registry,
        ),
        queue_depth=Gauge(
            "emotivoice_queue_depth",
            "Speech requests admitted and not finished (on the model or waiting for it)",
            registry=registry,
        ),
        queue_capacity=Gauge(
            "emotivoice_queue_capacity",
            "Speech requests admitted at once before 503",
            registry=registry,
        ),
        cache_hits=Counter(
            "emotivoice_embedding_cache_hits",
            "Embedding lookups answered from cache",
            ["kind"],
            registry=registry,
        ),
        cache_misses=Counter(
            "emotivoice_embedding_cache_misses",
            "Embedding lookups that ran BERT",
            ["kind"],
            registry=registry,
        ),
        cache_entries=Gauge(
            "emotivoice_embedding_cache_entries",
            "Embeddings held in cache",
            ["kind"],
            registry=registry,
        ),
        embedding_seconds=Histogram(
            "emotivoice_embedding_compute_seconds",
            "BERT calls made on cache misses (what a cache hit saves)",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        model_info=Info("emotivoice_model", "The loaded model", registry=registry),
    )
    registry.register(_GpuMemoryCollector(device))
    for reason in ("client_gone", "deadline"):
        metrics.requests_dropped.labels(reason=reason)
    for kind in ("prompt", "content"):
        metrics.cache_hits.labels(kind=kind)
        metrics.cache_misses.labels(kind=kind)
        metrics.cache_entries.labels(kind=kind).set(0)
    metrics.set_phase("starting")
    return metrics
