"""Half-sent requests (slowloris) must not take /health and /ready down.

gunicorn's threaded worker gave each connection a thread at its first byte and read the rest
with no timeout: 13 connections that sent half their headers (or a Content-Length of 100 and 4
bytes) held all 13 threads, and /health stopped answering. Our worker reads requests on its
event loop and hands a thread only complete ones (emotivoice_server.http_worker); here 50 such
connections stay open while the probes keep asking, and each is answered 408 and closed once its
request has had REQUEST_READ_TIMEOUT_S to arrive.
"""

from __future__ import annotations

import json
import socket
import statistics
import time

import pytest
import requests

from emotivoice_server.http_worker import (
    REQUEST_READ_TIMEOUT_S,
    request_complete,
    speech_request_size,
)
from tests.server.server_process import ServerProcess

SLOW_CONNECTIONS = 50
# The probes' own timeouts (operator/.../render/deployment.py): readiness 3 s, liveness 5 s.
READY_PROBE_TIMEOUT_S = 3
HEALTH_PROBE_TIMEOUT_S = 5


def test_request_complete_waits_for_headers_and_body():
    head = b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    assert not request_complete(b"GET /health HTTP/1.1\r\nHo")
    assert request_complete(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not request_complete(head + b"1234")
    assert request_complete(head + b"1234567890")
    chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert not request_complete(chunked + b"4\r\nabcd\r\n")
    assert request_complete(chunked + b"4\r\nabcd\r\n0\r\n\r\n")
    # Past what we would ever accept: handed over at once, for the 413/431 to go out.
    assert request_complete(b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n")
    assert request_complete(b"GET /" + b"x" * 70_000)


def test_speech_request_size_only_for_whole_speech_posts():
    body = b'{"input": "Hi."}'
    head = f"POST /v1/audio/speech HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    assert speech_request_size(head + body) == (len(head) + len(body), True)
    assert speech_request_size(head + body + b"GET /health") == (len(head) + len(body), True)
    closing = head.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n")
    assert speech_request_size(closing + body)[1] is False
    assert speech_request_size(head + body[:3]) == (None, False)
    assert speech_request_size(head.replace(b"POST", b"GET") + body) == (None, False)
    chunked = b"POST /v1/audio/speech HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert speech_request_size(chunked) == (None, False)


def _slow_connection(port: int, index: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if index % 2:
        sock.sendall(
            b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabcd"
        )
    else:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Ag")
    return sock


@pytest.mark.slow
def test_half_sent_requests_leave_health_and_ready_answering(server: ServerProcess):
    slow = [_slow_connection(server.port, i) for i in range(SLOW_CONNECTIONS)]
    trickler = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    opened = time.monotonic()
    latencies: list[float] = []
    failures: list[str] = []
    try:
        # Probe as the kubelet would, for most of the read timeout; a trickling client keeps
        # sending a byte at a time meanwhile.
        partial = b"GET /ready HTTP/1.1\r\nHost: x\r\nX-Slow: "
        sent = 0
        while time.monotonic() - opened < REQUEST_READ_TIMEOUT_S - 2:
            if sent < len(partial):
                trickler.sendall(partial[sent : sent + 1])
                sent += 1
            for path, timeout in (("/health", HEALTH_PROBE_TIMEOUT_S), ("/ready", 3)):
                began = time.perf_counter()
                try:
                    status = requests.get(server.url + path, timeout=timeout).status_code
                except requests.RequestException as err:
                    failures.append(f"{path}: {type(err).__name__}")
                    continue
                latencies.append(time.perf_counter() - began)
                if status != 200:
                    failures.append(f"{path}: {status}")
            time.sleep(0.5)
        assert failures == []
        assert len(latencies) >= 8
        # A speech request is served meanwhile too.
        speech = requests.post(
            f"{server.url}/v1/audio/speech",
            json={"input": "Still here.", "response_format": "wav"},
            timeout=60,
        )
        assert speech.status_code == 200
        # Past the read timeout every half-sent request is answered 408 and closed (the
        # trickler too, though it kept sending).
        for sock in [*slow, trickler]:
            sock.settimeout(REQUEST_READ_TIMEOUT_S + 10)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer
        waited = time.monotonic() - opened
        assert waited < REQUEST_READ_TIMEOUT_S + 10
        print(
            f"{SLOW_CONNECTIONS} half-sent requests: {len(latencies)} probes answered, median "
            f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
            f"408s after {waited:.1f} s"
        )
    finally:
        for sock in [*slow, trickler]:
            sock.close()


def test_pipelined_requests_read_ahead_are_all_answered(server: ServerProcess):
    # The event loop reads what arrived, several requests at once; those beyond the first
    # never make the socket readable again and must not wait for a keep-alive timeout.
    body = json.dumps({"input": "Hi there.", "response_format": "pcm", "pad": "x" * 9000})
    speech = (
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(speech + speech + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            chunk = sock.recv(65536)
            assert chunk, data[-300:]
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 3
