"""The Flask application: HTTP in, validated requests to the engine, audio bytes out.

Wiring only: the routes are `endpoints.Endpoints` (its parts injected), every error answer is
built by `errors`, a streamed answer by `streaming`. The extensions are what the HTTP worker
calls (`http_worker`): the early busy answer and the drain hook.
"""

from __future__ import annotations

from flask import Flask

from emotivoice_server.admission import Admission
from emotivoice_server.endpoints import Endpoints, Rejector, register_routes
from emotivoice_server.lifecycle import ModelHost
from emotivoice_server.metrics import ModelThreadCollector, ServerMetrics
from emotivoice_server.settings import MAX_BODY_BYTES, ServerSettings

# The names the HTTP worker looks up in `app.extensions`.
REJECTOR_EXTENSION = "emotivoice_rejector"
DRAIN_EXTENSION = "emotivoice_drain"


def create_app(
    host: ModelHost, metrics: ServerMetrics, admission: Admission, settings: ServerSettings
) -> Flask:
    app = Flask("emotivoice_server")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    metrics.queue_capacity.set(admission.capacity)
    thread = host.model_thread
    metrics.registry.register(ModelThreadCollector(lambda: (thread.busy_seconds, thread.calls)))
    register_routes(app, Endpoints(host, metrics, admission, settings))
    # The worker refuses a speech request on its event loop while the queue is full
    # (`http_worker.BufferingThreadWorker._answer_busy`).
    app.extensions[REJECTOR_EXTENSION] = Rejector(host, metrics, admission, settings.pool)
    # The worker calls this on SIGTERM (see `http_worker.BufferingThreadWorker.handle_exit`).
    app.extensions[DRAIN_EXTENSION] = host.drain
    return app
