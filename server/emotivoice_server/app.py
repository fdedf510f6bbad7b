"""The Flask application: HTTP in, validated requests to the engine, audio bytes out.

Errors follow OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) so the official
client raises a typed exception with our message. Nothing here touches tensors.
"""

from __future__ import annotations

import base64
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from emotivoice_server import audio
from emotivoice_server.admission import Admission
from emotivoice_server.engine import SpeechEngine
from emotivoice_server.lifecycle import ModelHost
from emotivoice_server.metrics import ModelThreadCollector, ServerMetrics
from emotivoice_server.model_thread import Abandoned, Ticket
from emotivoice_server.settings import DEFAULT_QUEUE_TIMEOUT_S, MAX_BODY_BYTES, POOL_HEADER
from emotivoice_server.speech_request import RequestError, SpeechRequest, parse_speech_request

log = logging.getLogger("emotivoice_server.app")

SPEECH_PATH = "/v1/audio/speech"
# The `openai` client's read timeout, sent with every request: how long it will wait for us.
CLIENT_TIMEOUT_HEADER = "X-Stainless-Read-Timeout"
# nginx's "client closed request": what the request counter records for a client that hung
# up before its answer (nobody receives that status).
CLIENT_GONE_STATUS = 499


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
    when the client goes away before the body is iterated at all; `finish` learns whether the
    whole body went out (a stream that failed or lost its client half-way is no 200).
    """

    def __init__(self, first: bytes, rest: Iterator[bytes], finish: Callable[[bool], None]):
        self._first: bytes | None = first
        self._rest = rest
        self._finish = finish
        self._closed = False
        self._complete = False

    def __iter__(self) -> _StreamedSpeech:
        return self

    def __next__(self) -> bytes:
        if self._first is not None:
            chunk, self._first = self._first, None
            return chunk
        try:
            return next(self._rest)
        except StopIteration:
            self._complete = True
            self.close()
            raise
        except Abandoned:  # the client left mid-stream: nothing to tell it, nothing to log
            self.close()
            raise StopIteration from None
        except BaseException:  # a failure mid-stream: logged, the slot is free either way
            log.exception("streamed speech failed after its first chunk")
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finish(self._complete)


def sse_event(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying a JSON object (OpenAI's speech events have no `event:`
    line; the type is in the object)."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def sse_chunks(chunks: Iterator[bytes], characters: int) -> Iterator[bytes]:
    """OpenAI's `stream_format: "sse"`: each audio chunk as a `speech.audio.delta` event (base64),
    then `speech.audio.done`. Its usage counts input characters: EmotiVoice has no text tokens."""
    for chunk in chunks:
        audio = base64.b64encode(chunk).decode("ascii")
        yield sse_event({"type": "speech.audio.delta", "audio": audio})
    usage = {"input_tokens": characters, "output_tokens": 0, "total_tokens": characters}
    yield sse_event({"type": "speech.audio.done", "usage": usage})


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


def create_app(
    host: ModelHost,
    metrics: ServerMetrics,
    admission: Admission,
    *,
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S,
    pool: str = "",
) -> Flask:
    app = Flask("emotivoice_server")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    formats = audio.available_formats()
    first_request = _FirstRequest(metrics)
    metrics.queue_capacity.set(admission.capacity)
    thread = host.model_thread
    metrics.registry.register(ModelThreadCollector(lambda: (thread.busy_seconds, thread.calls)))
    app.extensions["emotivoice_rejector"] = Rejector(host, metrics, admission)
    # The HTTP worker calls this on SIGTERM (see `http_worker.BufferingThreadWorker.handle_exit`).
    app.extensions["emotivoice_drain"] = host.drain

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        param = "body" if err.code == 413 else None
        message = err.description or err.name
        headers = None
        if err.code == 413:
            message = f"the request body is larger than {MAX_BODY_BYTES} bytes"
            headers = {"Connection": "close"}  # the rest of it is not worth reading
        return error_response(err.code or 500, message, param, headers=headers)

    @app.errorhandler(Exception)
    def unexpected_error(err: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, f"internal error: {type(err).__name__}", kind="server_error")

    @app.after_request
    def count_speech(response: Response) -> Response:
        """Every answer to a speech request is counted here, error handlers' 413s and 500s
        included; a stream is counted when it ends (see `_StreamedSpeech`)."""
        if request.path == SPEECH_PATH and not getattr(response, "counted_at_end", False):
            metrics.requests.labels(code=str(response.status_code)).inc()
        if pool:
            response.headers[POOL_HEADER] = pool
        return response

    @app.get("/health")
    def health() -> Response:
        """Liveness only: the process is up and serving HTTP. Says nothing about the model."""
        return jsonify({"status": "alive", "phase": host.state.phase})

    @app.get("/ready")
    def ready() -> Response:
        """200 once loaded and warm; 503 while starting, after a failure, and from SIGTERM on
        (draining: the body says so)."""
        body = host.readiness()
        response = jsonify(body)
        response.status_code = 200 if body["ready"] else 503
        return response

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        metrics.queue_depth.set(admission.depth)
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    def not_ready() -> Response:
        state = host.state
        if state.phase == "failed":
            return error_response(
                503,
                f"model failed to load: {state.error}",
                kind="server_error",
                headers={"x-should-retry": "false"},
            )
        return error_response(
            503,
            f"model not ready yet (phase: {state.phase}); retry shortly",
            kind="server_error",
            headers={"Retry-After": "2"},
        )

    def busy() -> Response:
        return busy_response(admission)

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

    @app.post(SPEECH_PATH)
    def speech() -> Response:
        began = time.perf_counter()
        engine = host.engine
        if engine is None:
            return not_ready()
        if admission.full:  # before reading the body: a refusal must cost next to nothing
            return busy()
        try:
            req = parse_speech_request(read_json_body(), formats)
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

        ticket = Ticket(
            deadline=_deadline(),
            client_gone=client_gone_probe(request.environ),
            calls_left=len(sentences) + (1 if req.streamed else 0),  # a stream's check first
        )
        if not admission.try_enter(ticket):
            return busy()
        metrics.queue_depth.set(admission.depth)
        try:
            if req.streamed:
                return _stream(engine, req, voice, sentences, began, ticket)
            waveform = engine.render_all(
                sentences, voice, req.prompt, req.language, req.speed, ticket
            )
            body_bytes = audio.encode(waveform, engine.sample_rate, req.response_format)
        except Abandoned as err:
            _leave(ticket)
            return _abandoned(err)
        except ValueError as err:  # UnknownTokenError and friends: a property of the input
            _leave(ticket)
            return error_response(400, str(err), _param_of(err))
        except BaseException:
            _leave(ticket)
            raise
        _leave(ticket)
        _observe(req, engine, time.perf_counter() - began, len(waveform), stream=False)
        response = Response(body_bytes, mimetype=audio.CONTENT_TYPES[req.response_format])
        response.headers["X-Sample-Rate"] = str(engine.sample_rate)
        return response

    def _deadline() -> float:
        """Until when this request may wait for the model: our limit, or the client's own
        read timeout when it tells it (the `openai` client does) and that is shorter."""
        limit = float(queue_timeout_s)
        raw = request.headers.get(CLIENT_TIMEOUT_HEADER)
        if raw:
            try:
                told = float(raw)
            except ValueError:
                told = limit
            if 0 < told < limit:
                limit = told
        return time.monotonic() + limit

    def _abandoned(err: Abandoned) -> Response:
        metrics.requests_dropped.labels(reason=err.reason).inc()
        if err.reason == "client_gone":
            return error_response(CLIENT_GONE_STATUS, "client closed the connection")
        return busy_response(
            admission, f"the request waited past its deadline for the model ({err}); retry later"
        )

    def _leave(ticket: Ticket) -> None:
        admission.leave(ticket)
        metrics.queue_depth.set(admission.depth)

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
        ticket: Ticket,
    ) -> Response:
        """Check every sentence and synthesize the first one now (their errors are still a
        clean 4xx, before any byte went out), stream the rest; raw bytes or SSE events."""
        samples = 0

        def waveforms() -> Iterator[Any]:
            nonlocal samples
            for sentence in sentences[1:]:
                waveform = engine.render(
                    sentence, voice, req.prompt, req.language, req.speed, ticket
                )
                samples += len(waveform)
                yield waveform

        try:
            engine.check(sentences, voice, req.language, ticket)
            first = engine.render(sentences[0], voice, req.prompt, req.language, req.speed, ticket)
        except Abandoned as err:
            _leave(ticket)
            return _abandoned(err)
        except ValueError as err:
            _leave(ticket)
            return error_response(400, str(err), _param_of(err))
        except BaseException:
            _leave(ticket)
            raise
        samples += len(first)
        metrics.first_audio_seconds.labels(stream="true").observe(time.perf_counter() - began)
        first_chunk = next(
            iter(audio.stream_chunks([first], engine.sample_rate, req.response_format))
        )
        # The WAV header already went with the first chunk.
        rest: Iterator[bytes] = iter(audio.stream_chunks(waveforms(), engine.sample_rate, "pcm"))
        mimetype = audio.CONTENT_TYPES[req.response_format]
        if req.stream_format == "sse":
            events = sse_chunks(_chain(first_chunk, rest), len(req.input))
            first_chunk, rest, mimetype = next(events), events, "text/event-stream"

        def finish(complete: bool) -> None:
            _leave(ticket)
            metrics.requests.labels(code="200" if complete else "truncated").inc()
            if complete:
                _observe(req, engine, time.perf_counter() - began, samples, stream=True)

        response = Response(_StreamedSpeech(first_chunk, rest, finish), mimetype=mimetype)
        response.counted_at_end = True  # type: ignore[attr-defined]
        response.headers["X-Sample-Rate"] = str(engine.sample_rate)
        if req.stream_format == "sse":
            response.headers["Cache-Control"] = "no-cache"
        return response

    return app


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def busy_response(admission: Admission, message: str | None = None) -> Response:
    """503 with the retry hint (see `admission`) in both headers clients read."""
    hint = admission.retry_hint()
    return error_response(
        503,
        message
        or f"server busy: {admission.capacity} requests admitted; retry in {hint.seconds:.3f} s",
        kind="server_error",
        headers={**hint.headers, "x-should-retry": "true"},
    )


class Rejector:
    """The busy answer written by the HTTP worker's event loop itself (see `http_worker`):
    no thread, no WSGI, no JSON parsing, so a storm of refused requests cannot starve the model
    thread of the CPU and the GIL."""

    def __init__(self, host: ModelHost, metrics: ServerMetrics, admission: Admission) -> None:
        self._host = host
        self._metrics = metrics
        self._admission = admission

    def busy_answer(self, keep_alive: bool) -> bytes | None:
        """The raw HTTP/1.1 response for a speech request now, or None to serve it normally."""
        admission = self._admission
        if not admission.full or not self._host.ready:
            return None
        hint = admission.retry_hint()
        body = json.dumps(
            {
                "error": {
                    "message": f"server busy: {admission.capacity} requests admitted; "
                    f"retry in {hint.seconds:.3f} s",
                    "type": "server_error",
                    "param": None,
                    "code": 503,
                }
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **hint.headers,
            "x-should-retry": "true",
            "Connection": "keep-alive" if keep_alive else "close",
        }
        head = "HTTP/1.1 503 Service Unavailable\r\n" + "".join(
            f"{key}: {value}\r\n" for key, value in headers.items()
        )
        self._metrics.requests.labels(code="503").inc()
        return head.encode("latin-1") + b"\r\n" + body


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
