"""The Flask application: HTTP in, validated requests to the engine, audio bytes out.

Errors follow OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) so the official
client raises a typed exception with our message. Nothing here touches tensors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from emotivoice_server import audio
from emotivoice_server.admission import Admission
from emotivoice_server.engine import SpeechEngine
from emotivoice_server.lifecycle import ModelHost
from emotivoice_server.metrics import ServerMetrics
from emotivoice_server.settings import MAX_BODY_BYTES
from emotivoice_server.speech_request import RequestError, SpeechRequest, parse_speech_request

log = logging.getLogger("emotivoice_server.app")


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    *,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify(
        {"error": {"message": message, "type": kind, "param": param, "code": status}}
    )
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


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


class _StreamedSpeech:
    """The body of a streamed response: first chunk already made, the rest made while sent.

    A class rather than a generator so that `close()` always frees the admission slot, even
    when the client goes away before the body is iterated at all.
    """

    def __init__(self, first: bytes, rest: Iterator[bytes], finish: Any) -> None:
        self._first: bytes | None = first
        self._rest = rest
        self._finish = finish
        self._closed = False

    def __iter__(self) -> _StreamedSpeech:
        return self

    def __next__(self) -> bytes:
        if self._first is not None:
            chunk, self._first = self._first, None
            return chunk
        try:
            return next(self._rest)
        except BaseException:  # the end, or a failure mid-stream: the slot is free either way
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finish()


def create_app(host: ModelHost, metrics: ServerMetrics, admission: Admission) -> Flask:
    app = Flask("emotivoice_server")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    formats = audio.available_formats()
    first_request = _FirstRequest(metrics)
    metrics.queue_capacity.set(admission.capacity)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        param = "body" if err.code == 413 else None
        message = err.description or err.name
        if err.code == 413:
            message = f"the request body is larger than {MAX_BODY_BYTES} bytes"
        return error_response(err.code or 500, message, param)

    @app.errorhandler(Exception)
    def unexpected_error(err: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, f"internal error: {type(err).__name__}", kind="server_error")

    @app.get("/health")
    def health() -> Response:
        """Liveness only: the process is up and serving HTTP. Says nothing about the model."""
        return jsonify({"status": "alive", "phase": host.state.phase})

    @app.get("/ready")
    def ready() -> Response:
        response = jsonify(host.readiness())
        response.status_code = 200 if host.ready else 503
        return response

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        metrics.queue_depth.set(admission.depth)
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    def not_ready() -> Response:
        state = host.state
        if state.phase == "failed":
            return error_response(503, f"model failed to load: {state.error}", kind="server_error")
        return error_response(
            503,
            f"model not ready yet (phase: {state.phase}); retry shortly",
            kind="server_error",
            headers={"Retry-After": "2"},
        )

    @app.get("/v1/models")
    def models() -> Response:
        settings = host.settings
        return jsonify(
            {
                "object": "list",
                "data": [
                    {
                        "id": settings.model_name,
                        "object": "model",
                        "created": int(settings.process_start),
                        "owned_by": "emotivoice",
                        "ready": host.ready,
                    }
                ],
            }
        )

    @app.get("/v1/voices")
    def voices() -> Response:
        engine = host.engine
        if engine is None:
            return not_ready()
        return jsonify({"voices": list(engine.speakers), "default": engine.default_voice})

    @app.post("/v1/audio/speech")
    def speech() -> Response:
        began = time.perf_counter()
        response = _speech(began)
        metrics.requests.labels(code=str(response.status_code)).inc()
        return response

    def _speech(began: float) -> Response:
        engine = host.engine
        if engine is None:
            return not_ready()
        body = request.get_json(force=True, silent=True)
        if body is None:
            return error_response(400, "the request body is not valid JSON", "body")
        try:
            req = parse_speech_request(body, formats)
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
        except RequestError as err:
            return error_response(err.status, err.message, err.param)

        if not admission.try_enter():
            metrics.queue_depth.set(admission.depth)
            return error_response(
                503,
                f"server busy: {admission.capacity} requests in progress; retry later",
                kind="server_error",
                headers={"Retry-After": str(admission.retry_after())},
            )
        metrics.queue_depth.set(admission.depth)
        if req.stream:
            return _stream(engine, req, voice, sentences, began)
        try:
            waveform = engine.render_all(sentences, voice, req.prompt, req.language, req.speed)
            body_bytes = audio.encode(waveform, engine.sample_rate, req.response_format)
        except ValueError as err:  # UnknownTokenError and friends: a property of the input
            _leave(began)
            return error_response(400, str(err), _param_of(err))
        except BaseException:
            _leave(began)
            raise
        seconds = _leave(began)
        _observe(req, engine, seconds, len(waveform), stream=False)
        response = Response(body_bytes, mimetype=audio.CONTENT_TYPES[req.response_format])
        response.headers["X-Sample-Rate"] = str(engine.sample_rate)
        return response

    def _leave(began: float) -> float:
        seconds = time.perf_counter() - began
        admission.leave(seconds)
        metrics.queue_depth.set(admission.depth)
        return seconds

    def _observe(
        req: SpeechRequest, engine: SpeechEngine, seconds: float, samples: int, stream: bool
    ) -> None:
        metrics.request_seconds.labels(response_format=req.response_format).observe(seconds)
        metrics.audio_seconds.inc(samples / engine.sample_rate)
        if not stream:
            metrics.first_audio_seconds.labels(stream="false").observe(seconds)
        first_request.observe(seconds)

    def _stream(
        engine: SpeechEngine,
        req: SpeechRequest,
        voice: str,
        sentences: list[str],
        began: float,
    ) -> Response:
        """Synthesize the first sentence now (its errors are still a clean 4xx), stream the rest."""
        samples = 0

        def waveforms() -> Iterator[Any]:
            nonlocal samples
            for sentence in sentences[1:]:
                waveform = engine.render(sentence, voice, req.prompt, req.language, req.speed)
                samples += len(waveform)
                yield waveform

        try:
            first = engine.render(sentences[0], voice, req.prompt, req.language, req.speed)
        except ValueError as err:
            _leave(began)
            return error_response(400, str(err), _param_of(err))
        except BaseException:
            _leave(began)
            raise
        samples += len(first)
        metrics.first_audio_seconds.labels(stream="true").observe(time.perf_counter() - began)
        chunks = audio.stream_chunks([first], engine.sample_rate, req.response_format)
        first_chunk = next(iter(chunks))
        rest = iter(
            audio.stream_chunks(waveforms(), engine.sample_rate, "pcm")
        )  # the WAV header already went with the first chunk

        def finish() -> None:
            seconds = _leave(began)
            _observe(req, engine, seconds, samples, stream=True)

        body = _StreamedSpeech(first_chunk, rest, finish)
        response = Response(body, mimetype=audio.CONTENT_TYPES[req.response_format])
        response.headers["X-Sample-Rate"] = str(engine.sample_rate)
        return response

    return app


def _param_of(err: ValueError) -> str | None:
    """Which request field a model error is about (by the model package's error class)."""
    name = type(err).__name__
    if name == "UnknownSpeakerError":
        return "voice"
    if name in ("UnknownTokenError", "EmptyInputError"):
        return "input"
    if "language" in str(err).lower():
        return "language"
    return None
