"""Every error answer the server gives, built here and nowhere else.

Errors follow OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) so the official
client raises a typed exception with our message. An `ErrorAnswer` is the answer before it is
written: `response()` for Flask, `raw()` for the HTTP worker's event loop, which refuses a speech
request before any thread or WSGI sees it (uvicorn's `service_unavailable`, one canned answer).
Both write the same status, body and headers; `shed_load` is the one 503 for a full queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from emotivoice_server.admission import Admission
from emotivoice_server.model_thread import Abandoned
from emotivoice_server.settings import MAX_BODY_BYTES
from emotivoice_server.speech_request import RequestError
from emotivoice_tts.errors import InputError

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
# nginx's "client closed request": what the request counter records for a client that hung
# up before its answer (nobody receives that status).
CLIENT_GONE_STATUS = 499


@dataclass(frozen=True)
class ErrorAnswer:
    """One error answer: status, OpenAI's error object, extra headers."""

    status: int
    message: str
    param: str | None = None
    kind: str = INVALID_REQUEST
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.status,
            }
        }

    def response(self) -> Response:
        """The answer as a Flask response (inside a request)."""
        response = jsonify(self.body())
        response.status_code = self.status
        for key, value in self.headers.items():
            response.headers[key] = value
        return response

    def raw(self, *, keep_alive: bool, extra: Mapping[str, str] | None = None) -> bytes:
        """The answer as HTTP/1.1 bytes, for a socket no WSGI server owns."""
        body = json.dumps(self.body()).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **self.headers,
            **(extra or {}),
            "Connection": "keep-alive" if keep_alive else "close",
        }
        head = f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}\r\n" + "".join(
            f"{key}: {value}\r\n" for key, value in headers.items()
        )
        return head.encode("latin-1") + b"\r\n" + body


def shed_load(admission: Admission, message: str | None = None) -> ErrorAnswer:
    """The one 503 for a full queue (or a request that waited past its deadline): the retry
    hint (see `admission`; asking for it advances its virtual line) in both headers clients
    read."""
    hint = admission.retry_hint()
    return ErrorAnswer(
        503,
        message
        or f"server busy: {admission.capacity} requests admitted; retry in {hint.seconds:.3f} s",
        kind=SERVER_ERROR,
        headers={**hint.headers, "x-should-retry": "true"},
    )


def abandoned(err: Abandoned, admission: Admission) -> ErrorAnswer:
    """A request dropped before the model ran it: its client left (499, recorded only) or it
    waited past its deadline (the busy 503)."""
    if err.reason == "client_gone":
        return ErrorAnswer(CLIENT_GONE_STATUS, "client closed the connection")
    return shed_load(
        admission, f"the request waited past its deadline for the model ({err}); retry later"
    )


def not_ready(phase: str, error: str | None) -> ErrorAnswer:
    """503 while the model is not loaded: retry shortly, or (it failed) not at all."""
    if phase == "failed":
        return ErrorAnswer(
            503,
            f"model failed to load: {error}",
            kind=SERVER_ERROR,
            headers={"x-should-retry": "false"},
        )
    return ErrorAnswer(
        503,
        f"model not ready yet (phase: {phase}); retry shortly",
        kind=SERVER_ERROR,
        headers={"Retry-After": "2"},
    )


def bad_input(err: ValueError) -> ErrorAnswer:
    """A property of the input: the request's own checks (`RequestError`, with its status) or
    the model package's (`InputError`: unknown voice, tokens, language, nothing to speak).
    Any other `ValueError` from the model is a 400 about no field in particular."""
    if isinstance(err, RequestError):
        return ErrorAnswer(err.status, err.message, err.param)
    param = err.param if isinstance(err, InputError) else None
    return ErrorAnswer(400, str(err), param)


def http_error(err: HTTPException) -> ErrorAnswer:
    """werkzeug's errors (404, 405, 413...); a too large body says so and closes the
    connection (the rest of it is not worth reading)."""
    if err.code == 413:
        return ErrorAnswer(
            413,
            f"the request body is larger than {MAX_BODY_BYTES} bytes",
            "body",
            headers={"Connection": "close"},
        )
    return ErrorAnswer(err.code or 500, err.description or err.name)


def internal_error(err: BaseException) -> ErrorAnswer:
    return ErrorAnswer(500, f"internal error: {type(err).__name__}", kind=SERVER_ERROR)
