"""Asking a Ready server pod for its phases, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from emotivoice_operator.tuning import prober

READY = {"ready": True, "phase": "ready", "phase_seconds": {"loading": 1.0}, "ready_after_s": 3.0}


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            body = json.dumps(READY).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], paths
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def pod(port: int, container_id: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "server", "ready": True}
    if container_id:
        status["containerID"] = container_id
    return {
        "spec": {"containers": [{"name": "server", "ports": [{"containerPort": port}]}]},
        "status": {"podIP": "127.0.0.1", "containerStatuses": [status]},
    }


def test_a_pod_a_runtime_runs_is_asked_once_for_its_ready_body(
    server: tuple[int, list[str]],
) -> None:
    port, paths = server
    assert prober.ask(pod(port, "containerd://abc")) == READY
    assert paths == ["/ready"]


def test_a_simulated_pod_is_never_contacted(server: tuple[int, list[str]]) -> None:
    port, paths = server
    assert prober.ask(pod(port, None)) is None
    assert paths == []


def test_no_answer_in_time_is_no_answer() -> None:
    # A port nobody listens on: refused at once, and the split falls back to the pod's states.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert prober.ask(pod(free, "containerd://abc"), timeout=0.5) is None
