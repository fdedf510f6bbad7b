"""A store that accepts connections and never answers: a listener on 127.0.0.1 that holds every
connection open, reads nothing and writes nothing (a wedged store pod, a black-holing proxy).

It counts the connections it accepted, so a test can also show that no request was made.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class HungListener:
    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)  # the accept loop looks at `_stop` this often
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hung-store", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HungListener:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()
