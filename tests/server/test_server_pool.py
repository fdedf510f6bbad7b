"""Every answer names the server's pool (EMOTIVOICE_POOL, from the pod's instance label): a
client behind a Service that moves between a pool and its fallback sees which one answered.
Including the busy 503 that the HTTP worker's event loop writes before any thread sees the
request."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emotivoice_server.settings import ENV_POOL, POOL_HEADER
from tests.server.conftest import START_TIMEOUT_S
from tests.server.server_process import ServerProcess, start_server

POOL = "tts-primary"


@pytest.fixture(scope="module")
def pool_server(
    small_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    server = start_server(
        small_model,
        tmp_path_factory.mktemp("pool") / "server.log",
        "--no-require-marker",
        "--no-persist-embeddings",
        "--max-queue",
        "0",
        "--torch-threads",
        "1",
        env={ENV_POOL: POOL},
        warmup={"phrases": ["Hello."]},
    )
    try:
        server.wait_ready(START_TIMEOUT_S)
        yield server
    finally:
        server.stop()


def _raw_speech(port: int, body: dict) -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def _head(sock: socket.socket) -> tuple[str, dict[str, str]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    status, *lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return status, {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}


def test_every_answer_names_the_pool(pool_server: ServerProcess) -> None:
    url = pool_server.url
    answers = [
        requests.get(f"{url}/health", timeout=10),
        requests.get(f"{url}/ready", timeout=10),
        requests.get(f"{url}/metrics", timeout=10),
        requests.get(f"{url}/v1/models", timeout=10),
        requests.get(f"{url}/v1/voices", timeout=10),
        requests.get(f"{url}/no/such/path", timeout=10),
        requests.post(f"{url}/v1/audio/speech", json={"input": ""}, timeout=30),
        requests.post(
            f"{url}/v1/audio/speech", json={"input": "Hi.", "response_format": "pcm"}, timeout=60
        ),
        requests.post(
            f"{url}/v1/audio/speech",
            json={"input": "Hi. There.", "response_format": "pcm", "stream_format": "sse"},
            timeout=60,
        ),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 200, 404, 400, 200, 200]
    assert all(a.headers.get(POOL_HEADER) == POOL for a in answers), [
        dict(a.headers) for a in answers
    ]


def test_the_event_loops_busy_answer_names_the_pool_too(pool_server: ServerProcess) -> None:
    # One admitted request (max-queue 0) kept on the model by 30 sentences.
    long_text = " ".join(f"This is sentence number {i}." for i in range(30))
    holder = _raw_speech(pool_server.port, {"input": long_text, "response_format": "pcm"})
    try:
        deadline = time.monotonic() + 30
        while pool_server.metrics()["emotivoice_queue_depth"] < 1:
            assert time.monotonic() < deadline, "the long request was never admitted"
            time.sleep(0.02)
        refused = _raw_speech(pool_server.port, {"input": "Hello.", "response_format": "pcm"})
        try:
            status, headers = _head(refused)
        finally:
            refused.close()
        holder.settimeout(60)
        assert _head(holder)[0] == "HTTP/1.1 200 OK"
    finally:
        holder.close()
    assert status == "HTTP/1.1 503 Service Unavailable"
    # Written by the worker's event loop, not by gunicorn (which adds its Server header).
    assert "server" not in headers, headers
    assert headers[POOL_HEADER.lower()] == POOL
