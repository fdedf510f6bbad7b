"""``warm_request``: what a window's pre-warm job asks for, at fixed instants (no cluster); and
``prime_replicas``, its priming, against a stand-in server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.prewarm_job import (
    UnknownWindowError,
    lead_wait,
    prime_replicas,
    warm_request,
)
from emotivoice_operator.windows.model import parse_windows
from emotivoice_operator.windows.schedule import prewarm_cron
from emotivoice_server import prime as priming
from emotivoice_server.warmup import ENV_WARMUP, WarmupSpec
from tests.support.invalid_specs import valid_resource

# valid_resource's window: Mondays 09:00-12:00 Asia/Shanghai (01:00-04:00Z), 2 replicas, lead 10m.
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


def test_inside_the_window_the_request_ends_with_it() -> None:
    request = warm_request(valid_resource(), "morning", MONDAY.replace(hour=0, minute=50))
    assert request.to_status() == {"replicas": 2, "expiresAt": "2026-01-05T04:00:00Z"}


def test_outside_it_the_request_holds_lead_plus_duration_from_now() -> None:
    request = warm_request(valid_resource(), "morning", MONDAY.replace(hour=6))
    assert request.to_status() == {"replicas": 2, "expiresAt": "2026-01-05T09:10:00Z"}


def _learned(seconds: float) -> dict[str, Any]:
    """valid_resource with its window on leadTime: auto and a lead of ``seconds`` learned."""
    body = valid_resource()
    body["spec"]["warmPool"]["windows"][0]["leadTime"] = "auto"
    body["spec"]["warmPool"]["autoLeadTime"] = {"min": "1s", "margin": "1s"}
    body["status"] = {"leadTime": {"mode": "learned", "seconds": seconds}}
    return body


def test_a_lead_in_seconds_fires_the_minute_before_and_the_job_waits_out_the_rest() -> None:
    """A learned 7.1 s lead: the CronJob fires at 00:59Z (the whole minute before 01:00Z), and
    the job waits 52.9 s, then asks for the window's replicas until its end."""
    body = _learned(7.1)
    (window,) = parse_windows(parse_spec(body["spec"]).warm_pool, timedelta(seconds=7.1))
    assert prewarm_cron(window) == "59 8 * * 1"  # Asia/Shanghai 08:59, Mondays
    fired = MONDAY.replace(hour=0, minute=59)
    assert lead_wait(body, "morning", fired) == pytest.approx(52.9)
    # A late pod start waits less; inside the lead, or far from it (a run by hand), none.
    assert lead_wait(body, "morning", fired + timedelta(seconds=30)) == pytest.approx(22.9)
    assert lead_wait(body, "morning", MONDAY.replace(hour=1, minute=0) - timedelta(seconds=5)) == 0
    assert lead_wait(body, "morning", MONDAY.replace(hour=0, minute=30)) == 0
    begun = MONDAY.replace(hour=0, minute=59, second=52, microsecond=900_000)
    assert warm_request(body, "morning", begun).to_status()["expiresAt"] == "2026-01-05T04:00:00Z"


def test_an_unknown_window_is_an_error_naming_the_known_ones_not_an_exit() -> None:
    with pytest.raises(UnknownWindowError, match=r"'evening' is not in .*known: morning"):
        warm_request(valid_resource(), "evening", MONDAY)


class _FakeServer(ThreadingHTTPServer):
    """A server's three priming routes on 127.0.0.1; records the speech requests it got."""

    def __init__(self, speech_status: int = 200) -> None:
        self.speech_status = speech_status
        self.spoken: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _FakeHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeHandler(BaseHTTPRequestHandler):
    server: _FakeServer

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/ready":
            self._answer(200, {"ready": True})
        else:
            self._answer(200, {"voices": ["8051", "9017"], "default": "9017"})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.spoken.append(json.loads(self.rfile.read(length)))
        self._answer(self.server.speech_status, {})

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serving(speech_status: int = 200) -> Iterator[_FakeServer]:
    server = _FakeServer(speech_status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_priming_sends_the_rendered_plan_once_per_replica_in_process() -> None:
    """The job imports the priming (no `emotivoice-server` process): the plan in
    EMOTIVOICE_WARMUP, voices defaulting to the server's default speaker."""
    env = {ENV_WARMUP: json.dumps({"phrases": ["Hello."], "prompts": ["", "Happy"]})}
    with _serving() as server:
        assert prime_replicas(server.url, 2, env) == 0
    assert server.spoken == 2 * [
        {"input": "Hello.", "voice": "9017", "prompt": "", "response_format": "pcm"},
        {"input": "Hello.", "voice": "9017", "prompt": "Happy", "response_format": "pcm"},
    ]


def test_a_failed_prime_ends_the_job_with_its_exit_code() -> None:
    with _serving(speech_status=503) as server:
        assert prime_replicas(server.url, 3, {}) == priming.EXIT_REQUESTS_FAILED
    assert len(server.spoken) == len(WarmupSpec().phrases) == 3  # the first prime's, no more


def test_a_malformed_plan_is_a_usage_error_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Port 9 (discard): nothing there, and nothing is sent to it either.
    code = prime_replicas("http://127.0.0.1:9", 1, {ENV_WARMUP: '{"phrase": []}'})
    assert code == priming.EXIT_BAD_PLAN
    assert "emotivoice-prewarm: EMOTIVOICE_WARMUP: unknown key(s) ['phrase']" in (
        capsys.readouterr().err
    )
