"""The HTTP endpoints: probes, metrics, and OpenAI's models, voices and speech routes.

`Endpoints` holds what they need, injected (the model host, the metrics, admission control and
the settings); `register_routes` puts its methods on a Flask app, with the error handlers and
the hook that counts every speech answer and names the pool. Every error answer comes from
`errors`; nothing here touches tensors.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from emotivoice_server import audio, errors
from emotivoice_server.admission import Admission
from emotivoice_server.engine import SpeechEngine
from emotivoice_server.lifecycle import ModelHost
from emotivoice_server.metrics import ServerMetrics
from emotivoice_server.model_thread import Abandoned, Ticket
from emotivoice_server.settings import MAX_BODY_BYTES, POOL_HEADER, ServerSettings
from emotivoice_server.speech_request import RequestError, SpeechRequest, parse_speech_request
from emotivoice_server.streaming import stream_response

log = logging.getLogger("emotivoice_server.app")

SPEECH_PATH = "/v1/audio/speech"
# The `openai` client's read timeout, sent with every request: how long it will wait for us.
CLIENT_TIMEOUT_HEADER = "X-Stainless-Read-Timeout"


class _FirstRequest:
    """Records the latency of the first user request after ready, once."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._done = False
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._metrics.first_request_seconds.set(seconds)


class Slot:
    """An admitted request's place, freed exactly once: when its `admitted` block ends, or,
    once handed to a stream (`hand_over`), when the stream ends."""

    def __init__(self, free: Callable[[], None]) -> None:
        self._free = free
        self._freed = False
        self.handed_over = False

    def free(self) -> None:
        if not self._freed:
            self._freed = True
            self._free()

    def hand_over(self) -> None:
        """The block no longer frees the slot: whoever it was handed to calls `free`."""
        self.handed_over = True


def client_gone_probe(environ: dict[str, Any]) -> Callable[[], bool]:
    """A cheap check that the client closed its connection (it reads as end-of-file).

    A client that half-closes its side after sending (rare; HTTP clients do not) would look
    gone too. Without the socket (another WSGI server) it never reports gone."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False

    def gone() -> bool:
        try:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not poller.poll(0):
                return False
            return socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    return gone


def read_json_body() -> Any:
    """The decoded JSON body; past MAX_BODY_BYTES, by its Content-Length or (chunked) by what
    arrived, a 413 (werkzeug's limited stream handed the chunked body over cut short, which
    then failed as JSON: a 400 that blamed the wrong thing)."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    stream = request.environ["wsgi.input"]  # gunicorn ends it at the body's end
    data = b""
    while len(data) <= MAX_BODY_BYTES:
        chunk = stream.read(MAX_BODY_BYTES + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    try:
        return json.loads(data)
    except RecursionError:
        raise RequestError(
            "the request body nests JSON too deeply; send a flat object", "body"
        ) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, too many digits in a number
        raise RequestError("the request body is not valid JSON", "body") from None


class Endpoints:
    """The server's routes over its injected parts; `register_routes` wires them to an app."""

    def __init__(
        self,
        host: ModelHost,
        metrics: ServerMetrics,
        admission: Admission,
        settings: ServerSettings,
    ) -> None:
        self.host = host
        self.metrics = metrics
        self.admission = admission
        self.settings = settings
        self.formats = audio.available_formats()
        self._first_request = _FirstRequest(metrics)

    # -- probes and metrics ----------------------------------------------------------------

    def health(self) -> Response:
        """Liveness only: the process is up and serving HTTP. Says nothing about the model."""
        return jsonify({"status": "alive", "phase": self.host.state.phase})

    def ready(self) -> Response:
        """200 once loaded and warm; 503 while starting, after a failure, and from SIGTERM on
        (draining: the body says so)."""
        body = self.host.readiness()
        response = jsonify(body)
        response.status_code = 200 if body["ready"] else 503
        return response

    def metrics_text(self) -> Response:
        self.metrics.queue_depth.set(self.admission.depth)
        return Response(generate_latest(self.metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    # -- OpenAI's routes -------------------------------------------------------------------

    def models(self) -> Response:
        settings = self.settings
        return jsonify(
            {
                "object": "list",
                "data": [
                    {
                        "id": settings.model_name,
                        "object": "model",
                        "created": int(settings.process_start),
                        "owned_by": "emotivoice",
                        "ready": self.host.ready,
                    }
                ],
            }
        )

    def voices(self) -> Response:
        engine = self.host.engine
        if engine is None:
            return self._not_ready()
        return jsonify({"voices": list(engine.speakers), "default": engine.default_voice})

    def speech(self) -> Response:
        began = time.perf_counter()
        engine = self.host.engine
        if engine is None:
            return self._not_ready()
        if self.admission.full:  # before reading the body: a refusal must cost next to nothing
            return errors.shed_load(self.admission).response()
        try:
            req, voice, sentences = self._parse(engine)
        except RequestError as err:
            return errors.bad_input(err).response()
        ticket = Ticket(
            deadline=self._deadline(),
            client_gone=client_gone_probe(request.environ),
            calls_left=len(sentences) + (1 if req.streamed else 0),  # a stream's check first
        )
        if not self.admission.try_enter(ticket):
            return errors.shed_load(self.admission).response()
        self.metrics.queue_depth.set(self.admission.depth)
        with self.admitted(ticket) as slot:
            try:
                if req.streamed:
                    return self._stream(engine, req, voice, sentences, began, ticket, slot)
                waveform = engine.render_all(
                    sentences, voice, req.prompt, req.language, req.speed, ticket
                )
                body = audio.encode(waveform, engine.sample_rate, req.response_format)
            except Abandoned as err:
                slot.free()  # first: the retry hint must not count this request
                self.metrics.requests_dropped.labels(reason=err.reason).inc()
                return errors.abandoned(err, self.admission).response()
            except ValueError as err:  # the model's InputErrors: a property of the input
                return errors.bad_input(err).response()
        self._observe(req, engine, time.perf_counter() - began, len(waveform), stream=False)
        response = Response(body, mimetype=audio.CONTENT_TYPES[req.response_format])
        response.headers["X-Sample-Rate"] = str(engine.sample_rate)
        return response

    # -- the parts of a speech request -----------------------------------------------------

    @contextmanager
    def admitted(self, ticket: Ticket) -> Iterator[Slot]:
        """The admitted ticket's slot, freed when the block ends, however it ends, unless the
        block handed it to a stream (see `Slot`)."""

        def free() -> None:
            self.admission.leave(ticket)
            self.metrics.queue_depth.set(self.admission.depth)

        slot = Slot(free)
        try:
            yield slot
        finally:
            if not slot.handed_over:
                slot.free()

    def _not_ready(self) -> Response:
        state = self.host.state
        return errors.not_ready(state.phase, state.error).response()

    def _parse(self, engine: SpeechEngine) -> tuple[SpeechRequest, str, list[str]]:
        """The request, its voice and its sentences; `RequestError` naming the field at fault."""
        req = parse_speech_request(read_json_body(), self.formats)
        voice = req.voice if req.voice is not None else engine.default_voice
        if not engine.has_voice(voice):
            raise RequestError(
                f"'voice' {voice!r} is not a speaker of this model; see GET /v1/voices "
                f"(e.g. {', '.join(engine.speakers[:3])})",
                "voice",
            )
        sentences = engine.sentences(req.input)
        if not sentences:
            raise RequestError("'input' has nothing to speak (no words)", "input")
        return req, voice, sentences

    def _deadline(self) -> float:
        """Until when this request may wait for the model: our limit, or the client's own
        read timeout when it tells it (the `openai` client does) and that is shorter."""
        limit = float(self.settings.queue_timeout_s)
        raw = request.headers.get(CLIENT_TIMEOUT_HEADER)
        if raw:
            try:
                told = float(raw)
            except ValueError:
                told = limit
            if 0 < told < limit:
                limit = told
        return time.monotonic() + limit

    def _observe(
        self, req: SpeechRequest, engine: SpeechEngine, seconds: float, samples: int, stream: bool
    ) -> None:
        metrics = self.metrics
        metrics.request_seconds.labels(response_format=req.response_format).observe(seconds)
        metrics.audio_seconds.inc(samples / engine.sample_rate)
        if not stream:
            metrics.first_audio_seconds.labels(stream="false").observe(seconds)
        self._first_request.observe(seconds)

    def _stream(
        self,
        engine: SpeechEngine,
        req: SpeechRequest,
        voice: str,
        sentences: list[str],
        began: float,
        ticket: Ticket,
        slot: Slot,
    ) -> Response:
        """Check every sentence and synthesize the first one now (their errors are still a
        clean 4xx, before any byte went out: the caller answers them), stream the rest; the
        stream takes the slot over and frees it at its end."""
        samples = 0

        def waveforms() -> Iterator[Any]:
            nonlocal samples
            for sentence in sentences[1:]:
                waveform = engine.render(
                    sentence, voice, req.prompt, req.language, req.speed, ticket
                )
                samples += len(waveform)
                yield waveform

        engine.check(sentences, voice, req.language, ticket)
        first = engine.render(sentences[0], voice, req.prompt, req.language, req.speed, ticket)
        samples += len(first)
        self.metrics.first_audio_seconds.labels(stream="true").observe(time.perf_counter() - began)
        first_chunk = next(
            iter(audio.stream_chunks([first], engine.sample_rate, req.response_format))
        )
        # The WAV header already went with the first chunk.
        rest: Iterator[bytes] = iter(audio.stream_chunks(waveforms(), engine.sample_rate, "pcm"))

        def finish(complete: bool) -> None:
            slot.free()
            self.metrics.requests.labels(code="200" if complete else "truncated").inc()
            if complete:
                self._observe(req, engine, time.perf_counter() - began, samples, stream=True)

        response = stream_response(
            first_chunk,
            rest,
            mimetype=audio.CONTENT_TYPES[req.response_format],
            sse_characters=len(req.input) if req.stream_format == "sse" else None,
            sample_rate=engine.sample_rate,
            finish=finish,
        )
        slot.hand_over()  # only now: until the body exists, the `admitted` block frees the slot
        return response

    # -- app-wide hooks --------------------------------------------------------------------

    def http_error(self, err: HTTPException) -> Response:
        return errors.http_error(err).response()

    def unexpected_error(self, err: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return errors.internal_error(err).response()

    def after_request(self, response: Response) -> Response:
        """Every answer to a speech request is counted here, error handlers' 413s and 500s
        included; a stream is counted when it ends (see `streaming`). Every answer names the
        pool."""
        if request.path == SPEECH_PATH and not getattr(response, "counted_at_end", False):
            self.metrics.requests.labels(code=str(response.status_code)).inc()
        if self.settings.pool:
            response.headers[POOL_HEADER] = self.settings.pool
        return response


def register_routes(app: Flask, endpoints: Endpoints) -> None:
    """Every route, error handler and answer hook of `endpoints`, on `app`."""
    app.register_error_handler(HTTPException, endpoints.http_error)
    app.register_error_handler(Exception, endpoints.unexpected_error)
    app.after_request(endpoints.after_request)
    app.add_url_rule("/health", "health", endpoints.health, methods=["GET"])
    app.add_url_rule("/ready", "ready", endpoints.ready, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", endpoints.metrics_text, methods=["GET"])
    app.add_url_rule("/v1/models", "models", endpoints.models, methods=["GET"])
    app.add_url_rule("/v1/voices", "voices", endpoints.voices, methods=["GET"])
    app.add_url_rule(SPEECH_PATH, "speech", endpoints.speech, methods=["POST"])


class Rejector:
    """The busy answer written by the HTTP worker's event loop itself (see `http_worker`):
    no thread, no WSGI, no JSON parsing, so a storm of refused requests cannot starve the model
    thread of the CPU and the GIL. The same answer as `speech`'s own (`errors.shed_load`)."""

    def __init__(
        self, host: ModelHost, metrics: ServerMetrics, admission: Admission, pool: str = ""
    ) -> None:
        self._host = host
        self._metrics = metrics
        self._admission = admission
        # The app's `after_request` names the pool on its answers; this one bypasses it.
        self._extra = {POOL_HEADER: pool} if pool else None

    def busy_answer(self, keep_alive: bool) -> bytes | None:
        """The raw HTTP/1.1 response for a speech request now, or None to serve it normally."""
        if not self._admission.full or not self._host.ready:
            return None
        answer = errors.shed_load(self._admission).raw(keep_alive=keep_alive, extra=self._extra)
        self._metrics.requests.labels(code="503").inc()
        return answer
