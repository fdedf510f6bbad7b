"""A store whose listing lies: an HTTP proxy on 127.0.0.1 in front of a real versitygw that
rewrites the ListObjectsV2 answers (a key's Size, or a key itself) and passes every other request
and answer through unchanged.

Why a proxy: no real S3 server can be made to list an object with a size it does not have, or a
key longer than S3 allows, yet a misbehaving store or a hostile one in between can. SigV4 signs
the Host header the client sent, which the proxy forwards as it is, so the real server still
checks every signature.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Rewrite = Callable[[bytes], bytes]


class LyingStore:
    def __init__(self, upstream_port: int, rewrite_listing: Rewrite) -> None:
        self.upstream_port = upstream_port
        self.rewrite_listing = rewrite_listing
        self.listings_rewritten = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers.items()))
                    answer = upstream.getresponse()
                    payload = answer.read()
                finally:
                    upstream.close()
                if self.command == "GET" and "list-type=2" in self.path:
                    payload = proxy.rewrite_listing(payload)
                    proxy.listings_rewritten += 1
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LyingStore:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
