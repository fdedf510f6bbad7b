"""Runs the app under gunicorn: one worker (one model in memory), threads for concurrency.

The gunicorn master binds the port before it forks the worker; the worker builds the Flask app,
starts the model start-up thread and serves at once, so /health answers while the model loads.
With `preload_app` off nothing heavy happens in the master, and the start-up thread lives in
the process that serves.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from emotivoice_server.settings import GRACEFUL_TIMEOUT_S, ServerSettings

log = logging.getLogger("emotivoice_server")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# A worker that misses its heartbeat this long is restarted by the master. The start-up thread
# does not block the worker's main loop, so this only catches a truly stuck worker.
WORKER_TIMEOUT_S = 120


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format=LOG_FORMAT, force=True)


def build_wsgi_app(settings: ServerSettings) -> tuple[Any, Any]:
    """(Flask app, ModelHost) with the start-up thread already running."""
    from emotivoice_server import metrics as metrics_module
    from emotivoice_server.admission import Admission
    from emotivoice_server.app import create_app
    from emotivoice_server.lifecycle import ModelHost

    holder: dict[str, ModelHost] = {}
    metrics = metrics_module.create(lambda: holder["host"].device if "host" in holder else None)
    admission = Admission(max_queue=settings.max_queue)
    host = ModelHost(settings, metrics)
    holder["host"] = host
    app = create_app(host, metrics, admission, settings)
    host.start()
    return app, host


class _Server(BaseApplication):
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.host: Any = None
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options = {
            "bind": f"{s.host}:{s.port}",
            "workers": 1,
            # gthread, with requests read by its event loop before a thread takes them.
            "worker_class": "emotivoice_server.http_worker.BufferingThreadWorker",
            "threads": s.threads,
            "timeout": WORKER_TIMEOUT_S,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "keepalive": 5,
            "preload_app": False,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "emotivoice-server",
            "worker_exit": self._worker_exit,
            "control_socket_disable": True,
        }
        for key, value in options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        configure_logging()
        app, self.host = build_wsgi_app(self.settings)
        return app

    def _worker_exit(self, server: Any, worker: Any) -> None:
        if self.host is not None:
            self.host.shutdown()


def run(settings: ServerSettings) -> int:
    """Serve until terminated (SIGTERM: graceful stop, prompt cache saved)."""
    if settings.threads <= settings.max_queue + 1:
        log.warning(
            "threads=%d <= admitted requests (max_queue %d + 1): /health and /ready may wait "
            "behind speech requests; use threads >= %d",
            settings.threads,
            settings.max_queue,
            settings.max_queue + 2,
        )
    _Server(settings).run()
    return 0
