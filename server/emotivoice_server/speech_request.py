"""Validation of a POST /v1/audio/speech body: OpenAI's fields and limits plus EmotiVoice's.

Pure: takes the decoded JSON and the set of formats this process can encode, returns a typed
request or raises `RequestError` naming the offending field, so a client learns what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from emotivoice_server.settings import MAX_INPUT_CHARS, MAX_PROMPT_CHARS

# OpenAI's list of formats; the ones this process cannot encode are refused by name.
OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
# OpenAI's default; WAV where this process has no MP3 encoder.
DEFAULT_FORMAT = "mp3"
FALLBACK_FORMAT = "wav"
MIN_SPEED, MAX_SPEED = 0.25, 4.0
MAX_LANGUAGE_CHARS = 32
# Formats whose bytes can be sent sentence by sentence as they are synthesized.
STREAMABLE_FORMATS = ("wav", "pcm")


class RequestError(ValueError):
    """A client error: `param` is the request field at fault (None: the body as a whole)."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


@dataclass(frozen=True)
class SpeechRequest:
    """A validated speech request; `voice` None means the model's default speaker."""

    input: str
    voice: str | None
    prompt: str
    language: str | None
    speed: float
    response_format: str
    stream: bool
    model: str | None
    # "audio": raw bytes (chunked when `stream`); "sse": OpenAI's server-sent events.
    stream_format: str = "audio"

    @property
    def streamed(self) -> bool:
        """Sent sentence by sentence as synthesized: `stream: true`, or any SSE request."""
        return self.stream or self.stream_format == "sse"


def _valid_unicode(value: str, key: str) -> str:
    """JSON may carry lone UTF-16 surrogates ("\\ud800"), which no encoder (and not the
    tokenizer) accepts: refuse them here, by field and position."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RequestError(
            f"'{key}' contains a lone UTF-16 surrogate ({value[err.start]!r}) at position "
            f"{err.start}; send valid Unicode text",
            key,
        ) from None
    return value


def _optional_str(body: dict, key: str, max_chars: int | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"'{key}' must be a string, got {type(value).__name__}", key)
    if max_chars is not None and len(value) > max_chars:
        raise RequestError(
            f"'{key}' is {len(value)} characters long; the limit is {max_chars}", key
        )
    return _valid_unicode(value, key)


def parse_speech_request(body: object, available_formats: Collection[str]) -> SpeechRequest:
    """Check every field of the body; unknown extra fields are ignored, as OpenAI clients add some."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", None)

    text = body.get("input")
    if text is None:
        raise RequestError("'input' is required: the text to speak", "input")
    if not isinstance(text, str):
        raise RequestError(f"'input' must be a string, got {type(text).__name__}", "input")
    if not text.strip():
        raise RequestError("'input' is empty; send the text to speak", "input")
    if len(text) > MAX_INPUT_CHARS:
        raise RequestError(
            f"'input' is {len(text)} characters long; the limit is {MAX_INPUT_CHARS} "
            "(split the text into several requests)",
            "input",
        )
    _valid_unicode(text, "input")

    voice = _optional_str(body, "voice", 128)
    if voice is not None and not voice.strip():
        raise RequestError("'voice' is empty; omit it or name a speaker (GET /v1/voices)", "voice")

    prompt = _optional_str(body, "prompt", MAX_PROMPT_CHARS)
    instructions = _optional_str(body, "instructions", MAX_PROMPT_CHARS)
    if prompt is not None and instructions is not None and prompt != instructions:
        raise RequestError(
            "'prompt' and 'instructions' are the same setting (the emotion/style text) "
            "and differ here; send only one",
            "instructions",
        )
    style = prompt if prompt is not None else (instructions or "")

    language = _optional_str(body, "language", MAX_LANGUAGE_CHARS)
    model = _optional_str(body, "model", 256)

    speed = body.get("speed", 1.0)
    if speed is None:
        speed = 1.0
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise RequestError(f"'speed' must be a number, got {type(speed).__name__}", "speed")
    try:
        speed = float(speed)  # an integer of 400 digits is valid JSON and overflows a float
    except OverflowError:
        speed = math.inf
    if not math.isfinite(speed):
        raise RequestError(
            f"'speed' must be a finite number between {MIN_SPEED} and {MAX_SPEED}", "speed"
        )
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise RequestError(
            f"'speed' is {speed}; it must lie between {MIN_SPEED} and {MAX_SPEED}", "speed"
        )

    default_format = DEFAULT_FORMAT if DEFAULT_FORMAT in available_formats else FALLBACK_FORMAT
    response_format = body.get("response_format")
    if response_format is None:
        # Server-sent events carry raw chunks: PCM, as OpenAI's own examples ask for.
        response_format = "pcm" if body.get("stream_format") == "sse" else default_format
    if not isinstance(response_format, str):
        raise RequestError(
            f"'response_format' must be a string, got {type(response_format).__name__}",
            "response_format",
        )
    supported = [f for f in OPENAI_FORMATS if f in available_formats]
    if response_format not in supported:
        known = "is not supported by this server" if response_format in OPENAI_FORMATS else ""
        raise RequestError(
            f"'response_format' {response_format!r} {known or 'is unknown'}; "
            f"use one of {', '.join(supported)}",
            "response_format",
        )

    stream_format = _optional_str(body, "stream_format", 16) or "audio"
    if stream_format not in ("audio", "sse"):
        raise RequestError(
            f"'stream_format' {stream_format!r} is not supported; use 'audio' (raw bytes, "
            "chunked with stream: true) or 'sse' (server-sent events)",
            "stream_format",
        )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError(f"'stream' must be true or false, got {stream!r}", "stream")
    if stream and response_format not in STREAMABLE_FORMATS:
        raise RequestError(
            f"'stream' works with response_format {' or '.join(STREAMABLE_FORMATS)}, "
            f"not {response_format!r}",
            "stream",
        )
    if stream_format == "sse" and response_format not in STREAMABLE_FORMATS:
        raise RequestError(
            f"'stream_format' 'sse' works with response_format "
            f"{' or '.join(STREAMABLE_FORMATS)}, not {response_format!r}",
            "response_format",
        )

    return SpeechRequest(
        input=text,
        voice=voice,
        prompt=style,
        language=language or None,
        speed=float(speed),
        response_format=response_format,
        stream=stream,
        model=model,
        stream_format=stream_format,
    )
