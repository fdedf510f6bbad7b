"""A streamed speech answer: the first chunk made before the answer starts, the rest while sent.

Raw audio bytes (WAV or PCM), or OpenAI's server-sent events (`stream_format: "sse"`). The body
frees the request's admission slot and counts the request when it ends, however it ends.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response

from emotivoice_server.model_thread import Abandoned

log = logging.getLogger("emotivoice_server.streaming")


class StreamedSpeech:
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

    def __iter__(self) -> StreamedSpeech:
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


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def stream_response(
    first: bytes,
    rest: Iterator[bytes],
    *,
    mimetype: str,
    sse_characters: int | None,
    sample_rate: int,
    finish: Callable[[bool], None],
) -> Response:
    """The streamed answer: audio chunks as they are, or (`sse_characters` given: the input's
    length, for the usage) as SSE events. Marked `counted_at_end`: `finish` counts it."""
    if sse_characters is not None:
        events = sse_chunks(_chain(first, rest), sse_characters)
        first, rest, mimetype = next(events), events, "text/event-stream"
    response = Response(StreamedSpeech(first, rest, finish), mimetype=mimetype)
    response.counted_at_end = True  # type: ignore[attr-defined]
    response.headers["X-Sample-Rate"] = str(sample_rate)
    if sse_characters is not None:
        response.headers["Cache-Control"] = "no-cache"
    return response
