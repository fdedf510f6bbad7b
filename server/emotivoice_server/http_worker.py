"""gunicorn's threaded worker, but a request reaches a thread only once it has fully arrived.

gunicorn's `gthread` worker hands a connection to one of its threads as soon as the first byte
arrives, and the thread then reads the headers and the body with no timeout. 13 connections
that send half a request's headers (or a Content-Length of 100 and 4 bytes) and then nothing
held all 13 threads, and `/health` stopped answering: the liveness probe would restart the pod
and reload the model. Here the worker's event loop reads each request itself, without blocking,
until its headers and body are in (our bodies are small: `MAX_BODY_BYTES`), and only then gives
it to a thread, which parses it from memory. A request that has not fully arrived within
`REQUEST_READ_TIMEOUT_S` is answered 408 and closed; a slow client costs a file descriptor,
never a thread, so `/health` and `/ready` answer whatever such clients do (measured in
tests/server/test_server_slow_clients.py). Once a thread owns the connection, every socket
operation (the rest of an oversized chunked body, the writes of a stream to a client that stopped
reading) times out after `SOCKET_TIMEOUT_S`.

Stopping (SIGTERM, which the kubelet sends once the pod's preStop sleep, its drain period, is
over): gunicorn already stops accepting, keeps kept-alive connections for 2 s (a request on one
is answered with `Connection: close`) and waits up to the graceful timeout for in-flight requests,
streams included. What it leaves out, added here: `/ready` turns 503 at once (the app's
`emotivoice_drain` hook), and the listening socket is closed as soon as the worker stops
accepting, after taking the connections already queued on it. gunicorn left it open until the
worker exited, so a connection made meanwhile waited unanswered in the kernel's queue for up to
the graceful timeout and was then reset; now it is refused at once, which every client (and the
`openai` client's retry) treats as "try another replica".

This reaches into gunicorn 27's worker (`TConn`, `finish_request`'s keep-alive path, the
per-iteration `murder_pending` hook, `set_accept_enabled` at shutdown, `handle_exit`); pyproject
pins gunicorn to 27.x for that reason.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

from emotivoice_server.settings import MAX_BODY_BYTES

# From the first byte of a request until its last; a real client sends our few kilobytes in
# milliseconds. Generous for slow links, short against a probe's 5 s x 3.
REQUEST_READ_TIMEOUT_S = 10.0
# A Service's change of pods (a pool and its fallback switching, a pod leaving) reaches a client
# only on its next connection: kube-proxy picks a pod per connection. A kept-alive connection
# this old gets `Connection: close` on its next answer, so every client moves within about
# this long, at the price of one new connection per client this often.
CONNECTION_MAX_AGE_S = 2.0
# Any one read or write once a thread owns the connection.
SOCKET_TIMEOUT_S = 30.0
# gunicorn's own header limits (limit_request_line + fields) are far below this; past it the
# parser gets what there is and answers the error itself.
MAX_HEADER_BYTES = 64 * 1024
_RECV_CHUNK = 64 * 1024
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)


class PrebufferedSocket(socket.socket):
    """A client socket whose `recv` first returns what the event loop already read.

    `setblocking(True)` (which gunicorn calls before a thread parses) sets a timeout instead, so
    no blocking call on it can last forever.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.inbox = bytearray()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.inbox and not flags:
            chunk = bytes(self.inbox[:bufsize])
            del self.inbox[:bufsize]
            return chunk
        return super().recv(bufsize, flags)

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(SOCKET_TIMEOUT_S)
        else:
            super().setblocking(False)


def request_complete(data: bytes | bytearray, max_body: int = MAX_BODY_BYTES) -> bool:
    """Whether `data` holds a whole request, or as much of one as a thread should see.

    True once the headers ended and the body is in (by Content-Length, or a chunked body's
    last chunk); also True when the headers or the body exceed what we would ever accept, so the
    parser or the app answers the error (431/400/413) at once instead of the client timing out.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return len(data) > MAX_HEADER_BYTES
    head = bytes(data[:end]).lower()
    body = len(data) - end - 4
    chunked = False
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return True  # malformed: the parser's 400
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
    if chunked:
        # The last chunk ("0", maybe with extensions, then trailers and an empty line). A false
        # positive inside a chunk's data only hands the request over early; the thread then
        # reads the rest under SOCKET_TIMEOUT_S.
        tail = bytes(data[end + 2 :])
        return body > max_body or (b"\r\n0\r\n" in tail and tail.endswith(b"\r\n\r\n"))
    return length > max_body or body >= length


SPEECH_TARGET = b"/v1/audio/speech"


def speech_request_size(data: bytes | bytearray) -> tuple[int | None, bool]:
    """For a complete `POST /v1/audio/speech` with a Content-Length at the start of `data`:
    (its size in bytes, whether the client keeps the connection open). (None, False) for
    anything else, which a thread serves as usual."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None, False
    lines = bytes(data[:end]).split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[1].split(b"?")[0] != SPEECH_TARGET:
        return None, False
    keep_alive = parts[2] == b"HTTP/1.1"
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None, False
        elif name == b"transfer-encoding":
            return None, False
        elif name == b"connection":
            keep_alive = b"close" not in value and (keep_alive or b"keep-alive" in value)
    if length is None or length > MAX_BODY_BYTES or len(data) < end + 4 + length:
        return None, False
    return end + 4 + length, keep_alive


class BufferedConn(TConn):
    """gunicorn's connection, closed without lingering on the event loop.

    gunicorn's graceful close half-closes and then waits up to 2 s for the peer's FIN, on the
    event loop: a client that asked for `Connection: close` and never closed its side would stall
    every other connection (health checks included) for those 2 s. Here the close drains only
    what has already arrived (so the kernel sends FIN, not RST) and returns.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.born = time.monotonic()

    def close(self, graceful: bool = False) -> None:
        if graceful:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
                socket.socket.setblocking(self.sock, False)
                while socket.socket.recv(self.sock, _RECV_CHUNK):
                    pass
        with contextlib.suppress(OSError):
            self.sock.close()


class BufferingThreadWorker(ThreadWorker):
    """`gthread` with requests read by the event loop (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections whose request is still arriving, by the monotonic time it must be in.
        self.reading: dict[TConn, float] = {}
        self.listeners_closed = False

    def accept(self, listener: socket.socket) -> None:
        self._accept_one(listener)

    def _accept_one(self, listener: socket.socket) -> bool:
        """Accept one queued connection and start reading its request; False if none was."""
        try:
            client, address = listener.accept()
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return err.errno == errno.ECONNABORTED  # that one is gone; more may be queued
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, PrebufferedSocket(client), address, listener.getsockname())
        self._start_reading(conn, register=True)
        return True

    # -- stopping --------------------------------------------------------------------------

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: gunicorn's graceful stop, and `/ready` answers 503 from now on."""
        drain = getattr(getattr(self, "wsgi", None), "extensions", {}).get("emotivoice_drain")
        if drain is not None and self.alive:
            drain()
        super().handle_exit(sig, frame)

    def set_accept_enabled(self, enabled: bool) -> None:
        """gunicorn's; once the worker is stopping, also take what is queued and close."""
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            self.close_listeners()

    def close_listeners(self) -> None:
        """Accept the connections the kernel already queued (their clients are waiting, and a
        close would reset them), then close the listening sockets: from then on a connection to
        this port is refused at once (the master closed its copy before it signalled us).

        A connection that arrives between the last accept and the close is reset by the kernel;
        that window is microseconds, against gunicorn's graceful timeout before."""
        if self.listeners_closed:
            return
        self.listeners_closed = True
        for listener in self.sockets:
            with contextlib.suppress(OSError):
                listener.setblocking(False)
                # Bounded by the queue's own length (gunicorn's backlog setting).
                for _ in range(self.cfg.backlog + 1):
                    if not self._accept_one(listener):
                        break
            with contextlib.suppress(OSError):
                listener.close()

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection's next request began: read it here, like a new one."""
        self.keepalived_conns.remove(conn)
        self._start_reading(conn, register=False)
        self._read(conn, client)

    def _start_reading(self, conn: TConn, *, register: bool) -> None:
        self.reading[conn] = time.monotonic() + REQUEST_READ_TIMEOUT_S
        callback = partial(self._read, conn)
        if register:
            self.poller.register(conn.sock, selectors.EVENT_READ, callback)
        else:
            self.poller.modify(conn.sock, selectors.EVENT_READ, callback)

    def _read(self, conn: BufferedConn, _client: Any) -> None:
        sock: PrebufferedSocket = conn.sock
        try:
            data = socket.socket.recv(sock, _RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before its request was complete
            self._drop(conn)
            return
        sock.inbox += data
        self._consider(conn)

    def _consider(self, conn: BufferedConn) -> None:
        """Hand the buffered request to a thread (or refuse it here) once it is complete."""
        sock: PrebufferedSocket = conn.sock
        while request_complete(sock.inbox):
            answered = self._answer_busy(conn)
            if answered is None:
                self.reading.pop(conn, None)
                self.poller.unregister(sock)
                conn.data_ready = True  # gunicorn must not wait for readability again
                self.enqueue_req(conn)
                return
            if not answered:
                return  # closed
            self.reading[conn] = time.monotonic() + REQUEST_READ_TIMEOUT_S
            if not sock.inbox:
                return

    def _answer_busy(self, conn: BufferedConn) -> bool | None:
        """Refuse a speech request right here when the app says it is busy (see
        `emotivoice_server.endpoints.Rejector`): None when a thread should serve it, else whether the
        connection stays open for the next request."""
        rejector = getattr(self.wsgi, "extensions", {}).get("emotivoice_rejector")
        sock: PrebufferedSocket = conn.sock
        size, keep_alive = speech_request_size(sock.inbox)
        if rejector is None or size is None:
            return None
        answer = rejector.busy_answer(keep_alive)
        if answer is None:
            return None
        del sock.inbox[:size]
        try:
            sent = socket.socket.send(sock, answer)
        except OSError:
            sent = 0
        if sent < len(answer) or not keep_alive:  # a full send buffer: not worth waiting for
            self.reading.pop(conn, None)
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(sock)
            self.nr_conns -= 1
            conn.close(graceful=sent == len(answer))
            return False
        return True

    def _drop(self, conn: TConn, answer: bytes = b"") -> None:
        self.reading.pop(conn, None)
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        if answer:
            with contextlib.suppress(OSError):
                socket.socket.send(conn.sock, answer)
        self.nr_conns -= 1
        conn.close()

    def handle_request(self, req: Any, conn: BufferedConn) -> Any:
        """gunicorn's, plus: an old connection's answer closes it (``CONNECTION_MAX_AGE_S``)."""
        if time.monotonic() - getattr(conn, "born", time.monotonic()) > CONNECTION_MAX_AGE_S:
            req.must_close = True
        return super().handle_request(req, conn)

    def finish_request(self, conn: BufferedConn, fs: Any) -> None:
        """gunicorn's, plus: a pipelined request already read into the buffer never makes the
        socket readable again, so it is considered at once."""
        super().finish_request(conn, fs)
        if conn.sock.inbox and conn in self.keepalived_conns:
            self.keepalived_conns.remove(conn)
            self._start_reading(conn, register=False)
            self._consider(conn)

    def murder_pending(self) -> None:
        """gunicorn's hook on every loop iteration: also close requests that arrive too slowly."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, deadline in self.reading.items() if deadline <= now]:
            self._drop(conn, _TIMEOUT_RESPONSE)
