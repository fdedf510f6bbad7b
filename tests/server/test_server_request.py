"""The speech request validator: OpenAI's limits, EmotiVoice's fields, errors that name the field."""

from __future__ import annotations

import pytest

from emotivoice_server.settings import MAX_INPUT_CHARS, MAX_PROMPT_CHARS
from emotivoice_server.speech_request import RequestError, parse_speech_request

FORMATS = frozenset({"wav", "pcm", "flac"})


def parse(**body):
    return parse_speech_request(body, FORMATS)


def error_of(body) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_speech_request(body, FORMATS)
    return info.value


def test_defaults_fill_what_openai_leaves_out():
    req = parse(input="Hello.")
    assert req.input == "Hello."
    assert req.voice is None
    assert req.prompt == ""
    assert req.language is None
    assert req.speed == 1.0
    assert req.response_format == "wav"  # OpenAI's default mp3 is not in FORMATS here
    assert req.stream is False
    assert parse_speech_request({"input": "x"}, {"wav", "mp3"}).response_format == "mp3"


def test_all_fields_pass_through():
    req = parse(
        input="你好",
        voice="8051",
        prompt="开心",
        language="zh_us",
        speed=1.5,
        response_format="pcm",
        stream=True,
        model="tts-1",
        unknown_extra="ignored",
    )
    assert (req.voice, req.prompt, req.language, req.speed) == ("8051", "开心", "zh_us", 1.5)
    assert (req.response_format, req.stream, req.model) == ("pcm", True, "tts-1")


def test_instructions_is_the_prompt():
    assert parse(input="x", instructions="Sad").prompt == "Sad"
    assert parse(input="x", instructions="Sad", prompt="Sad").prompt == "Sad"
    err = error_of({"input": "x", "instructions": "Sad", "prompt": "Happy"})
    assert err.param == "instructions"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({}, "input", "required"),
        ({"input": ""}, "input", "empty"),
        ({"input": "   \n"}, "input", "empty"),
        ({"input": 5}, "input", "string"),
        ({"input": "a" * (MAX_INPUT_CHARS + 1)}, "input", str(MAX_INPUT_CHARS)),
        ({"input": "x", "speed": 0.2}, "speed", "between 0.25 and 4.0"),
        ({"input": "x", "speed": 4.01}, "speed", "between"),
        ({"input": "x", "speed": "fast"}, "speed", "number"),
        ({"input": "x", "speed": True}, "speed", "number"),
        ({"input": "x", "speed": float("nan")}, "speed", "number"),
        ({"input": "x", "response_format": "aac"}, "response_format", "not supported"),
        ({"input": "x", "response_format": "mp3"}, "response_format", "flac, wav, pcm"),
        ({"input": "x", "response_format": "ogg"}, "response_format", "unknown"),
        ({"input": "x", "voice": ""}, "voice", "empty"),
        ({"input": "x", "voice": 3}, "voice", "string"),
        ({"input": "x", "prompt": "p" * (MAX_PROMPT_CHARS + 1)}, "prompt", "limit"),
        ({"input": "x", "stream": "yes"}, "stream", "true or false"),
        ({"input": "x", "stream": True, "response_format": "flac"}, "stream", "wav or pcm"),
        ({"input": "x", "stream_format": "websocket"}, "stream_format", "not supported"),
        (
            {"input": "x", "stream_format": "sse", "response_format": "flac"},
            "response_format",
            "sse",
        ),
        ({"input": "x", "speed": 10**400}, "speed", "finite"),
        ({"input": "x", "response_format": []}, "response_format", "string, got list"),
        ({"input": "x", "response_format": {}}, "response_format", "string, got dict"),
        ({"input": "\ud800hello"}, "input", "surrogate"),
        ({"input": "x", "voice": "\udc00"}, "voice", "surrogate"),
    ],
)
def test_bad_fields_are_named(body, param, fragment):
    err = error_of(body)
    assert err.param == param
    assert fragment in err.message
    assert err.status == 400


def test_body_must_be_an_object():
    err = error_of(["input", "x"])
    assert err.param is None
    assert "JSON object" in err.message


def test_limits_are_inclusive():
    assert parse(input="a" * MAX_INPUT_CHARS, speed=0.25).speed == 0.25
    assert parse(input="a", speed=4).speed == 4.0


def test_long_sentences_are_cut_at_commas_then_spaces():
    from emotivoice_server.pieces import bound_pieces

    long = "one, " * 40 + "end."
    pieces = bound_pieces([long, "Short."], max_chars=50)
    assert all(len(p) <= 50 for p in pieces)
    assert pieces[-1] == "Short."
    assert all(p.endswith(",") for p in pieces[:-3])
    assert " ".join(pieces[:-1]).split() == long.split()
    words = bound_pieces(["word " * 30], max_chars=50)
    assert all(len(p) <= 50 and not p.endswith("wor") for p in words)
    assert bound_pieces(["x" * 120], max_chars=50) == ["x" * 50, "x" * 50, "x" * 20]


def test_sse_streams_pcm_unless_told_otherwise():
    req = parse(input="x", stream_format="sse")
    assert (req.stream_format, req.response_format, req.streamed) == ("sse", "pcm", True)
    assert parse(input="x", stream_format="sse", response_format="wav").response_format == "wav"
    assert parse(input="x", stream_format="audio").streamed is False
