"""`emotivoice_server.errors`: every error answer in OpenAI's shape, one 503 for a full queue
written the same by the app and by the HTTP worker's event loop, fields by error type."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from emotivoice_server import errors
from emotivoice_server.admission import Admission
from emotivoice_server.model_thread import Abandoned
from emotivoice_server.settings import MAX_BODY_BYTES
from emotivoice_server.speech_request import RequestError
from emotivoice_tts.errors import (
    EmptyInputError,
    InputError,
    UnknownSpeakerError,
    UnknownTokenError,
    UnsupportedLanguageError,
)


def _full() -> Admission:
    admission = Admission(max_queue=0)
    assert admission.try_enter()
    return admission


def _raw_parts(raw: bytes) -> tuple[str, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body)
    return status, headers, json.loads(body)


def test_the_shed_load_answer_is_the_same_from_flask_and_from_the_event_loop() -> None:
    admission = _full()
    answer = errors.shed_load(admission)
    status, headers, body = _raw_parts(answer.raw(keep_alive=True))
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert headers["Connection"] == "keep-alive"
    with Flask(__name__).test_request_context():
        response = answer.response()
    assert response.status_code == 503
    assert response.get_json() == body
    for key in ("Retry-After", "retry-after-ms", "x-should-retry"):
        assert response.headers[key] == headers[key]
    assert body["error"]["type"] == "server_error"
    assert body["error"]["message"].startswith("server busy: 1 requests admitted; retry in ")
    assert headers["x-should-retry"] == "true"
    closing = _raw_parts(answer.raw(keep_alive=False, extra={"X-Extra": "1"}))[1]
    assert closing["Connection"] == "close" and closing["X-Extra"] == "1"


def test_a_request_past_its_deadline_gets_the_busy_answer_and_a_gone_client_499() -> None:
    late = errors.abandoned(Abandoned("deadline"), _full())
    assert late.status == 503 and "deadline" in late.message
    assert {"Retry-After", "retry-after-ms"} <= set(late.headers)
    gone = errors.abandoned(Abandoned("client_gone"), _full())
    assert gone.status == errors.CLIENT_GONE_STATUS == 499


@pytest.mark.parametrize(
    ("err", "param"),
    [
        (UnknownSpeakerError("x", ["8051"]), "voice"),
        (UnknownTokenError(["zz"], "text"), "input"),
        (EmptyInputError("!!"), "input"),
        (UnsupportedLanguageError("fr"), "language"),
        (ValueError("some other language problem"), None),
        (RequestError("'speed' must be at most 4", "speed"), "speed"),
    ],
)
def test_input_errors_name_their_field_by_type(err: ValueError, param: str | None) -> None:
    answer = errors.bad_input(err)
    assert (answer.status, answer.param, answer.message) == (400, param, str(err))
    assert answer.body()["error"] == {
        "message": str(err),
        "type": "invalid_request_error",
        "param": param,
        "code": 400,
    }


def test_every_model_input_error_is_an_input_error_with_a_field() -> None:
    for cls in (UnknownSpeakerError, UnknownTokenError, EmptyInputError, UnsupportedLanguageError):
        assert issubclass(cls, InputError) and issubclass(cls, ValueError)
        assert cls.param in ("voice", "input", "language")


def test_a_request_error_keeps_its_own_status() -> None:
    answer = errors.bad_input(RequestError("too big", "body", status=413))
    assert (answer.status, answer.param) == (413, "body")


def test_http_errors_and_the_oversized_body() -> None:
    too_big = errors.http_error(RequestEntityTooLarge())
    assert too_big.status == 413 and too_big.param == "body"
    assert str(MAX_BODY_BYTES) in too_big.message
    assert too_big.headers == {"Connection": "close"}
    missing = errors.http_error(NotFound())
    assert (missing.status, missing.param, missing.kind) == (404, None, "invalid_request_error")


def test_not_ready_says_whether_to_retry() -> None:
    loading = errors.not_ready("loading", None)
    assert loading.headers == {"Retry-After": "2"} and "phase: loading" in loading.message
    failed = errors.not_ready("failed", "no such file")
    assert failed.headers == {"x-should-retry": "false"}
    assert failed.message == "model failed to load: no such file"
    assert errors.internal_error(KeyError("k")).body()["error"]["message"] == (
        "internal error: KeyError"
    )
