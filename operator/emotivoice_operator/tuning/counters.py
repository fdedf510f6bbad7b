"""Reading the counters of the pods that serve a service's traffic: the answered requests, for
its wake, and the model's busy seconds with the requests, for the cost of its windows.

For the wake, only for a service with ``spec.fallback`` whose traffic goes to the fallback while
its floor is 0, or that is woken (emotivoice_operator.fallback); for the cost, only while a
window is warm and at its edges (tuning/cost.py). Either way every ``POLL_SECONDS`` at most, at
most ``MAX_PODS`` pods, one GET of ``/metrics`` each with a short timeout. Pods no container
runtime runs (KWOK's) are never contacted, as with the prober. A pod that does not answer is
left out of this read (its count is read again next time), so it never looks like a request.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from emotivoice_operator.exposition import counter_sum
from emotivoice_operator.fallback import requests_answered
from emotivoice_operator.tuning.phases import ready_at
from emotivoice_operator.tuning.prober import TIMEOUT_SECONDS, ready_url

log = logging.getLogger(__name__)

MAX_PODS = 10
# The server's exposition is a few KB; a cap keeps a wrong answer from costing memory.
MAX_BYTES = 256 * 1024
# The server's counter of wall seconds its model thread spent (emotivoice_server.metrics).
BUSY_COUNTER = "emotivoice_model_busy_seconds_total"


@dataclass(frozen=True)
class ServerCounters:
    """One server's counters at one read: the model thread's busy seconds, answered requests."""

    busy_seconds: float
    requests: float


def parse(metrics_text: str) -> ServerCounters:
    """Busy seconds and answered speech requests (every code) from a server's /metrics."""
    return ServerCounters(counter_sum(metrics_text, BUSY_COUNTER), requests_answered(metrics_text))


def ready_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods Ready now and not leaving: those a Service sends traffic to."""
    return [
        p for p in pods if ready_at(p) and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]


def readable(pods: list[dict[str, Any]]) -> bool:
    """Whether any Ready pod can be asked (a container runtime runs it: not KWOK's)."""
    return any(ready_url(p) is not None for p in ready_pods(pods))


def read(pods: list[dict[str, Any]], timeout: float = TIMEOUT_SECONDS) -> dict[str, float]:
    """Answered speech requests by pod uid, for the Ready pods that answered."""
    return {uid: c.requests for uid, c in read_all(pods, timeout).items()}


def read_all(
    pods: list[dict[str, Any]], timeout: float = TIMEOUT_SECONDS
) -> dict[str, ServerCounters]:
    """Both counters by pod uid, for the Ready pods that answered."""
    counts: dict[str, ServerCounters] = {}
    for pod in ready_pods(pods)[:MAX_PODS]:
        url = ready_url(pod)
        uid = (pod.get("metadata") or {}).get("uid")
        if url is None or not uid:
            continue
        url = url.removesuffix("/ready") + "/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                text = response.read(MAX_BYTES).decode("utf-8", "replace")
        except (OSError, urllib.error.URLError) as exc:
            log.info("could not read the request counter of %s: %s", url, exc)
            continue
        counts[uid] = parse(text)
    return counts
