"""A bounded load test: 20 concurrent clients for at most 20 s against a small queue.

What must hold under deliberate overload: every answer is a 200 or a 503 with Retry-After (no
other 5xx, no hang), liveness keeps answering, the server's own count of 200s matches the
clients', the queue drains to zero, and the worker's memory stays bounded.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.server.conftest import START_TIMEOUT_S
from tests.server.server_process import start_server

pytestmark = pytest.mark.slow

CLIENTS = 20
DURATION_S = 20.0
MAX_QUEUE = 2
# Memory growth allowed over the run: generous against allocator noise, far below what an
# unbounded queue or a leak per request would add over thousands of requests.
RSS_GROWTH_LIMIT = 200 * 1024 * 1024
TEXTS = ["Hello.", "Good morning to you.", "今天天气真好。", "One. Two. Three."]


def test_overload_gives_200_or_503_only_and_memory_stays_bounded(small_model: Path, tmp_path: Path):
    server = start_server(
        small_model,
        tmp_path / "server.log",
        "--no-require-marker",
        "--no-persist-embeddings",
        "--max-queue",
        str(MAX_QUEUE),
        warmup={"phrases": ["Hello."]},
    )
    try:
        server.wait_ready(START_TIMEOUT_S)
        rss_before = server.worker_rss_bytes()
        statuses: Counter[int] = Counter()
        missing_retry_after = 0
        health_failures = 0
        lock = threading.Lock()
        stop_at = time.monotonic() + DURATION_S

        def client(index: int) -> None:
            nonlocal missing_retry_after
            session = requests.Session()
            n = 0
            while time.monotonic() < stop_at:
                body = {
                    "input": TEXTS[(index + n) % len(TEXTS)],
                    "prompt": ["", "Happy", "Sad"][n % 3],
                    "response_format": "pcm" if n % 2 else "wav",
                    "stream": n % 4 == 3,
                }
                n += 1
                try:
                    response = session.post(f"{server.url}/v1/audio/speech", json=body, timeout=60)
                    _ = response.content
                except requests.RequestException:
                    with lock:
                        statuses[0] += 1
                    continue
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 503 and "Retry-After" not in response.headers:
                        missing_retry_after += 1
                if response.status_code == 503:
                    time.sleep(0.05)  # a polite client backs off a little

        def liveness() -> None:
            nonlocal health_failures
            while time.monotonic() < stop_at:
                try:
                    ok = requests.get(f"{server.url}/health", timeout=5).status_code == 200
                except requests.RequestException:
                    ok = False
                if not ok:
                    health_failures += 1
                time.sleep(0.5)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        threads.append(threading.Thread(target=liveness))
        for t in threads:
            t.start()
        for t in threads:
            t.join(DURATION_S + 90)
        assert not any(t.is_alive() for t in threads), "a client hung"

        assert set(statuses) <= {200, 503}, statuses
        assert statuses[200] > 0 and statuses[503] > 0, statuses
        assert missing_retry_after == 0
        assert health_failures == 0
        metrics = server.metrics()
        assert metrics['emotivoice_speech_requests_total{code="200"}'] == statuses[200]
        assert metrics['emotivoice_speech_requests_total{code="503"}'] == statuses[503]
        assert metrics["emotivoice_queue_depth"] == 0
        rss_after = server.worker_rss_bytes()
        assert rss_after - rss_before < RSS_GROWTH_LIMIT, (rss_before, rss_after)
        # Still serving normally afterwards.
        after = requests.post(f"{server.url}/v1/audio/speech", json={"input": "Done."}, timeout=60)
        assert after.status_code == 200
        print(f"load: {dict(statuses)}; rss {rss_before >> 20} -> {rss_after >> 20} MiB")
    finally:
        server.stop()
