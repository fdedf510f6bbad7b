"""A primary pool at zero behind a CPU fallback, on the real node, through the primary's Service
with the official `openai` client: every request is answered, a request wakes the primary,
traffic moves to it once it is Ready, the fallback's pod leaving changes nothing, the primary's
pod leaving under load loses nothing, and after the hold the primary goes back to zero.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.operator_process import wait_for
from tests.support.services import create_service, evs_manifest
from tests.support.store import ModelStore
from tests.support.workload import pod_ready

pytestmark = pytest.mark.timeout(900)

PRIMARY, FALLBACK = "tts-main", "tts-cpu"
POOL_HEADER = "x-emotivoice-pool"
CLIENT_PERIOD_S = 0.5
CLIENT_LIMIT_S = 420.0


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-fallback-caches")


@dataclass
class Answer:
    sent: float  # monotonic
    outcome: str  # "200", "503 retry", or what failed
    pool: str = ""


@dataclass
class Client:
    """Speech requests at a steady rate through one URL, bounded in count and time; records
    every outcome and the pool that answered (X-EmotiVoice-Pool)."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from openai import APIConnectionError, APIStatusError, OpenAI

        client = OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=60)
        deadline = time.monotonic() + CLIENT_LIMIT_S
        for _ in range(int(CLIENT_LIMIT_S / CLIENT_PERIOD_S)):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            sent = time.monotonic()
            try:
                raw = client.audio.speech.with_raw_response.create(
                    model="emotivoice", voice="8051", input="Hello.", response_format="wav"
                )
                body = raw.content
                ok = raw.status_code == 200 and body[:4] == b"RIFF"
                answer = Answer(sent, "200" if ok else f"bad body {raw.status_code}")
                answer.pool = raw.headers.get(POOL_HEADER, "")
            except APIStatusError as err:
                retry = err.status_code == 503 and err.response.headers.get("Retry-After")
                answer = Answer(sent, "503 retry" if retry else f"{err.status_code}")
            except APIConnectionError as err:
                answer = Answer(sent, f"connection: {err.__cause__!r}")
            self.answers.append(answer)
            time.sleep(max(0.0, CLIENT_PERIOD_S - (time.monotonic() - sent)))

    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.outcome not in ("200", "503 retry")]


def _status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", ns).get("status") or {}


def _ready_pods(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component=server"
    pods = cluster.get_json("pods", "-n", ns, "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and pod_ready(p)]


def _service_url(cluster: Cluster, ns: str, name: str) -> str:
    svc = cluster.get_json("service", name, "-n", ns)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def test_a_primary_at_zero_behind_a_fallback_answers_every_request_and_wakes(
    real_cluster: Cluster,
    operator_release: str,
    model_store: ModelStore,
    e2e_namespace: str,
    cache_root: Path,
) -> None:
    cluster, ns = real_cluster, e2e_namespace
    create_service(cluster, ns, evs_manifest(FALLBACK, model_store), cache_root)
    primary = evs_manifest(PRIMARY, model_store, replicas={"min": 0, "max": 1})
    primary["spec"]["fallback"] = {"service": FALLBACK, "wakeHold": "1m"}
    create_service(cluster, ns, primary, cache_root, wait=False)
    wait_for(
        lambda: (_status(cluster, ns, PRIMARY).get("routing") or {}).get("pool") == FALLBACK,
        timeout=120, interval=1, what="the primary's Service on the fallback",
    )  # fmt: skip
    assert _ready_pods(cluster, ns, PRIMARY) == []

    client = Client(_service_url(cluster, ns, PRIMARY))
    thread = threading.Thread(target=client.run)
    thread.start()
    try:
        # 1. At zero: the fallback answers, and the first answer wakes the primary.
        woken = wait_for(
            lambda: _status(cluster, ns, PRIMARY).get("wake"), timeout=60, interval=1,
            what="status.wake",
        )  # fmt: skip
        assert client.answers and client.answers[0].pool == FALLBACK, client.answers[:3]
        # 2. Its own pod Ready: traffic moves to it within seconds.
        [pod] = wait_for(
            lambda: _ready_pods(cluster, ns, PRIMARY), timeout=300, interval=1,
            what="the woken primary's pod Ready",
        )  # fmt: skip
        ready_seen = time.monotonic()
        wait_for(
            lambda: any(a.pool == PRIMARY for a in client.answers), timeout=30, interval=0.5,
            what="an answer from the primary",
        )  # fmt: skip
        first_own = next(a for a in client.answers if a.pool == PRIMARY)
        print(f"\nswitch: first answer from the primary {first_own.sent - ready_seen:+.1f} s "
              "after its pod was seen Ready (polled every second)")  # fmt: skip
        starts = _status(cluster, ns, PRIMARY).get("coldStarts") or {}
        assert any(r.get("woken") for r in starts.get("recent", [])), starts
        assert woken["since"] <= woken["expiresAt"]

        # 3. The fallback's only pod leaves while the primary serves: nothing changes.
        [fallback_pod] = _ready_pods(cluster, ns, FALLBACK)
        mark = len(client.answers)
        cluster.kubectl("delete", "pod", fallback_pod["metadata"]["name"], "-n", ns, "--wait=false")
        time.sleep(5)
        after = client.answers[mark:]
        assert after and all(a.pool == PRIMARY for a in after if a.outcome == "200"), after
        wait_for(
            lambda: _ready_pods(cluster, ns, FALLBACK), timeout=300, interval=1,
            what="the fallback back",
        )  # fmt: skip

        # 4. The primary's pod leaves under load: its requests move to the fallback.
        mark = len(client.answers)
        cluster.kubectl("delete", "pod", pod["metadata"]["name"], "-n", ns, "--wait=false")
        wait_for(
            lambda: any(a.pool == FALLBACK for a in client.answers[mark:]), timeout=60,
            interval=0.5, what="answers from the fallback after the primary's pod left",
        )  # fmt: skip
    finally:
        client.stop.set()
        thread.join(timeout=90)

    failed = client.failed()
    assert failed == [], f"{len(failed)} of {len(client.answers)} failed: {failed[:5]}"
    # 5. No more requests: after the hold the primary goes back to zero, traffic to the fallback.
    wait_for(
        lambda: not _status(cluster, ns, PRIMARY).get("wake")
        and not _ready_pods(cluster, ns, PRIMARY)
        and (_status(cluster, ns, PRIMARY).get("routing") or {}).get("pool") == FALLBACK,
        timeout=240, interval=2, what="the primary back at zero after the hold",
    )  # fmt: skip
    events = cluster.get_json(
        "events", "-n", ns, "--field-selector", f"involvedObject.name={PRIMARY}"
    )["items"]
    reasons = [e["reason"] for e in events]
    assert "Woken" in reasons and reasons.count("Routed") >= 2, reasons
    served = {a.pool for a in client.answers}
    print(f"{len(client.answers)} requests, 0 failed, served by {sorted(served)}")
