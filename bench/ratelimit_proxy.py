"""A loopback TCP proxy that limits each connection's throughput, modelling a real object store.

On loopback one HTTP stream runs at memory speed, so a single-stream download looks as good as a
parallel one. S3 serves roughly 50-100 MB/s per connection; this proxy caps every connection
(each direction) at `rate` bytes per second so that the benchmark and the tests see what a pod
sees against a real store. It also counts the bytes it passed, which tests use to prove that
five pods together downloaded a model once.

Usage: python bench/ratelimit_proxy.py --upstream 127.0.0.1:7070 --rate-mb 50 [--port N]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import socket
import threading
import time
from dataclasses import dataclass, field

CHUNK = 256 * 1024


@dataclass
class ProxyStats:
    """Bytes passed and connections accepted, thread-safe."""

    downstream_bytes: int = 0  # upstream server -> client
    upstream_bytes: int = 0
    connections: int = 0
    _mu: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, downstream: int = 0, upstream: int = 0, connections: int = 0) -> None:
        with self._mu:
            self.downstream_bytes += downstream
            self.upstream_bytes += upstream
            self.connections += connections


class RateLimitProxy:
    """Listens on 127.0.0.1:`port` (0: any free port) and forwards to `upstream`."""

    def __init__(self, upstream: tuple[str, int], rate_bytes_s: float, port: int = 0) -> None:
        self.upstream = upstream
        self.rate = rate_bytes_s
        self.stats = ProxyStats()
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._mu = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RateLimitProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.drop_connections()
        self._thread.join(timeout=5)

    def drop_connections(self) -> None:
        """Reset every open connection (a store restart as the client sees it)."""
        with self._mu:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> RateLimitProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # upstream down: the client sees a closed connection
                continue
            server.settimeout(None)
            self.stats.add(connections=1)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._mu:
                self._open.update((client, server))
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        """Copy src -> dst, at most `rate` bytes/s. With splice(2) the bytes go socket -> pipe
        -> socket inside the kernel, so the proxy's own CPU use does not cap the throughput it
        is meant to model (a Python copy loop would, on a two-core machine)."""
        move = _Splicer() if hasattr(os, "splice") else _Copier()
        next_at = time.monotonic()
        try:
            while True:
                n = move(src, dst)
                if n == 0:
                    break
                if downstream:
                    self.stats.add(downstream=n)
                else:
                    self.stats.add(upstream=n)
                # Token bucket with a 50 ms burst: a connection may not run ahead of `rate`.
                next_at = max(next_at, time.monotonic() - 0.05) + n / self.rate
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except OSError:
            pass
        finally:
            move.close()
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._mu:
                self._open.discard(src)
                self._open.discard(dst)
            src.close()


class _Splicer:
    """Moves up to CHUNK bytes from one socket to another through a pipe, in the kernel."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, CHUNK)

    def __call__(self, src: socket.socket, dst: socket.socket) -> int:
        n = os.splice(src.fileno(), self.w, CHUNK)
        left = n
        while left:
            left -= os.splice(self.r, dst.fileno(), left)
        return n

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class _Copier:
    """The portable fallback: recv into a buffer, sendall."""

    def __init__(self) -> None:
        self.buf = bytearray(CHUNK)

    def __call__(self, src: socket.socket, dst: socket.socket) -> int:
        n = src.recv_into(self.buf)
        dst.sendall(memoryview(self.buf)[:n])
        return n

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    parser.add_argument("--rate-mb", type=float, default=50.0, help="MB/s per connection")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    with RateLimitProxy((host, int(port)), args.rate_mb * 1e6, args.port) as proxy:
        print(f"proxy on {proxy.endpoint} -> {args.upstream}, {args.rate_mb} MB/s per connection")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
