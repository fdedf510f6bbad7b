"""SIGTERM with work in flight (issue 29, "No request lost when pods leave"): the real server.

The kubelet sends SIGTERM once the pod's preStop sleep (its drain period) is over. From then on:
`/ready` answers 503 with a body that says draining, a stream already running finishes whole,
a connection the kernel had already queued is answered, a new connection is refused at once (not
left waiting in the queue and reset at exit), and the process exits 0 within the graceful
timeout. One server, started here and stopped here by its pid.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from emotivoice_server.settings import GRACEFUL_TIMEOUT_S
from tests.server.conftest import START_TIMEOUT_S
from tests.server.server_process import ServerProcess, start_server

pytestmark = pytest.mark.slow

# Five sentences: the stream makes each one while the previous one is sent, so after its first
# chunk four are still to come (about a second each on two shared cores, a fraction on a GPU).
TEXT = (
    "The first sentence starts the stream. A second one follows it. Then comes a third. "
    "A fourth sentence is nearly the last. The fifth one ends it."
)
WARMUP = {"phrases": ["Hello."], "prompts": [""]}
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)
CHUNKED_END = b"0\r\n\r\n"


def _shared_pending_signals(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("ShdPnd:"):
            return int(line.split()[1], 16)
    return 0


def _all_threads_stopped(pid: int) -> bool:
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            states.append(stat[stat.rindex(")") + 2])
    return bool(states) and all(state == "T" for state in states)


def _wait(predicate, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


def _recv_until(sock: socket.socket, done, deadline: float, data: bytes = b"") -> bytes:
    """Read until ``done(data)`` or EOF, at most until ``deadline`` (monotonic)."""
    while not done(data):
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
        if time.monotonic() >= deadline:
            break
    return data


def _available(sock: socket.socket) -> bytes:
    """Whatever has already arrived, without waiting."""
    sock.setblocking(False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    sock.setblocking(True)
    return data


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    for _ in range(100_000):
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
    raise AssertionError("too many chunks")


def _refused(port: int) -> bool:
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=1)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    conn.close()
    return False


@pytest.fixture
def fresh_server(small_model: Path, tmp_path: Path):
    proc = start_server(small_model, tmp_path / "server.log", "--no-require-marker", warmup=WARMUP)
    try:
        proc.wait_ready(START_TIMEOUT_S)
        yield proc
    finally:
        proc.stop()


def test_sigterm_finishes_the_stream_answers_the_queue_and_refuses_what_comes_after(
    fresh_server: ServerProcess,
) -> None:
    server = fresh_server
    whole = requests.post(
        f"{server.url}/v1/audio/speech",
        json={"input": TEXT, "response_format": "pcm"},
        timeout=120,
    ).content
    assert len(whole) > 0

    # A stream, its headers and first sentence in: four sentences still to be made.
    body = json.dumps({"input": TEXT, "response_format": "pcm", "stream": True}).encode()
    stream = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    stream.sendall(
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    got = _recv_until(
        stream,
        lambda d: b"\r\n\r\n" in d and len(d) > d.index(b"\r\n\r\n") + 4,
        time.monotonic() + 120,
    )
    head, _, streamed = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower(), head

    # A client that holds a kept-alive connection (as a load balancer does).
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    kept.request("GET", "/ready")
    first = kept.getresponse()
    assert first.status == 200 and json.loads(first.read())["ready"] is True

    # The worker held still, a connection lands in the kernel's queue (no one accepted it yet),
    # then SIGTERM goes to the server's own pid, the way the kubelet sends it to the container.
    worker = server.worker_pid()
    os.kill(worker, signal.SIGSTOP)
    try:
        # SIGSTOP takes effect when each thread next runs: until then a SIGTERM could still
        # be taken by one of them.
        _wait(lambda: _all_threads_stopped(worker), 10, "the worker stopped")
        queued = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        queued.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        sigterm_at = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        # The master forwards it: the worker gets it the moment it runs again.
        _wait(
            lambda: _shared_pending_signals(worker) & SIGTERM_BIT,
            10,
            "the master forwarded SIGTERM to the worker",
        )
    finally:
        os.kill(worker, signal.SIGCONT)

    # /ready: 503 at once, and it says why.
    kept.request("GET", "/ready")
    answer = kept.getresponse()
    ready = json.loads(answer.read())
    assert answer.status == 503, ready
    assert ready["ready"] is False and ready["draining"] is True, ready
    assert "draining" in ready["message"], ready
    kept.close()

    # The queued connection was taken and answered, not reset.
    reply = _recv_until(queued, lambda d: False, time.monotonic() + 10)
    queued.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]

    # A new connection is refused at once: the listening socket is closed, not left queuing.
    _wait(lambda: _refused(server.port), 5, "a new connection refused", interval=0.05)
    refused_after = time.monotonic() - sigterm_at

    # ... while the stream is still being made (gunicorn alone kept the listening socket open
    # until the worker exited: a connection made meanwhile was queued, unanswered, then reset).
    streamed += _available(stream)
    in_flight = not streamed.endswith(CHUNKED_END)
    # ... and it finishes whole.
    streamed = _recv_until(
        stream,
        lambda d: d.endswith(CHUNKED_END),
        time.monotonic() + GRACEFUL_TIMEOUT_S + 10,
        streamed,
    )
    stream.close()
    assert streamed.endswith(CHUNKED_END), f"stream cut after {len(streamed)} bytes"
    assert _dechunk(streamed) == whole
    assert in_flight, (
        f"new connections were refused only {refused_after:.2f} s after SIGTERM, when the "
        "stream had ended: the listener stayed open while the worker drained (or the stream "
        "was too short to test it)"
    )

    # The process exits 0, within the graceful timeout.
    code = server.proc.wait(timeout=GRACEFUL_TIMEOUT_S + 10)
    stopped_after = time.monotonic() - sigterm_at
    assert code == 0, server.log()[-3000:]
    assert stopped_after < GRACEFUL_TIMEOUT_S, stopped_after
    print(
        f"\nSIGTERM -> refused {refused_after:.3f} s; stream ({len(whole)} bytes) whole; "
        f"exit 0 after {stopped_after:.2f} s"
    )
