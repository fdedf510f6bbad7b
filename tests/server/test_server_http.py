"""The real server process on the generated small model, over real HTTP on 127.0.0.1.

Start-up order (health before ready, ready only after warm-up), the speech API (WAV, PCM,
streaming raw and as server-sent events, the official `openai` client), the error cases (bad
input is a 400 naming the field, never a 500), the metrics, and `prime`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import wave

import openai
import pytest
import requests
import soundfile

from tests.server.conftest import WARMUP
from tests.server.server_process import ServerProcess, free_port, server_command

pytestmark = pytest.mark.slow

PHASE_ORDER = ["starting", "verifying", "importing", "loading", "warming", "ready"]


def speech(server: ServerProcess, **body) -> requests.Response:
    """POST a speech request; WAV unless the test asks for another format."""
    body.setdefault("response_format", "wav")
    return requests.post(f"{server.url}/v1/audio/speech", json=body, timeout=60)


def read_wav(data: bytes) -> tuple[int, int, bytes]:
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getnchannels() == 1
        assert reader.getsampwidth() == 2
        return reader.getframerate(), reader.getnframes(), reader.readframes(reader.getnframes())


# -- start-up ------------------------------------------------------------------------------


def test_health_answers_before_ready(server: ServerProcess):
    trace = server.trace
    first_health = next(s.t for s in trace if s.health == 200)
    first_ready = next(s.t for s in trace if s.ready == 200)
    assert first_health < first_ready
    # While loading, liveness said yes and readiness said no, with the phase it was in.
    loading = [s for s in trace if s.health == 200 and s.ready == 503]
    assert loading, "never saw the server alive but not ready"
    assert all(s.phase in PHASE_ORDER[:-1] for s in loading)
    # Phases only move forward.
    seen = [PHASE_ORDER.index(s.phase) for s in trace if s.phase in PHASE_ORDER]
    assert seen == sorted(seen)
    assert seen[-1] == PHASE_ORDER.index("ready")


def test_ready_reports_every_phase_and_only_after_warmup(server: ServerProcess):
    body = requests.get(f"{server.url}/ready", timeout=5).json()
    assert body["ready"] is True
    assert set(body["phase_seconds"]) == {"importing", "loading", "warming"}
    assert body["ready_after_s"] >= sum(body["phase_seconds"].values())
    # The instant its seconds count from (the operator anchors the server's phases on it): the
    # server was ready ready_after_s after it, and since_process_start_s after it is now.
    started = body["process_started_at"]
    assert started + body["ready_after_s"] <= time.time()
    assert abs(started + body["since_process_start_s"] - time.time()) < 1.0
    metrics = server.metrics()
    # Each configured phrase ran (2 phrases, the second has 2 sentences), before ready.
    assert metrics["emotivoice_warmup_synthesis_total"] >= 3
    assert metrics['emotivoice_startup_phase_seconds{phase="warming"}'] > 0
    assert (
        metrics["emotivoice_process_start_to_ready_seconds"]
        >= (metrics["emotivoice_process_start_to_loaded_seconds"])
    )
    assert metrics["emotivoice_ready"] == 1
    assert metrics['emotivoice_startup_phase{phase="ready"}'] == 1
    log = server.log()
    for phase in ("importing", "loading", "warming", "ready"):
        assert f"startup phase={phase} " in log


# -- the speech API ------------------------------------------------------------------------


def test_wav_has_the_model_rate_and_a_plausible_duration(server: ServerProcess):
    short = speech(server, input="Hello.", response_format="wav")
    assert short.status_code == 200, short.text
    assert short.headers["Content-Type"] == "audio/wav"
    rate, frames, _ = read_wav(short.content)
    assert rate == 16000 == int(short.headers["X-Sample-Rate"])
    longer = speech(server, input="Hello. Good morning to you, and welcome to the show.")
    _, longer_frames, _ = read_wav(longer.content)
    # Audio exists, is not absurdly long, and grows with the text.
    assert 0.05 < frames / rate < 10
    assert longer_frames > 2 * frames


def test_speed_shortens_the_audio(server: ServerProcess):
    text = "Good morning to you, and welcome to the show."
    normal = read_wav(speech(server, input=text).content)[1]
    fast = read_wav(speech(server, input=text, speed=2.0).content)[1]
    slow = read_wav(speech(server, input=text, speed=0.5).content)[1]
    assert fast < normal < slow
    assert 0.3 < fast / normal < 0.7


@pytest.mark.parametrize(
    ("response_format", "content_type"),
    [("flac", "audio/flac"), ("mp3", "audio/mpeg"), ("opus", "audio/ogg")],
)
def test_compressed_formats_decode_to_the_same_length(
    server: ServerProcess, response_format, content_type
):
    text = "Good morning to you."
    _, frames, _ = read_wav(speech(server, input=text).content)
    response = speech(server, input=text, response_format=response_format)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    decoded, rate = soundfile.read(io.BytesIO(response.content))
    assert rate == 16000
    assert abs(len(decoded) - frames) <= 0.05 * frames + 2048  # codec framing and padding


def test_default_format_is_openais_mp3(server: ServerProcess):
    response = requests.post(f"{server.url}/v1/audio/speech", json={"input": "Hi."}, timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/mpeg"


def test_pcm_is_the_wav_payload(server: ServerProcess):
    text = "今天天气真好。"
    wav = speech(server, input=text, voice=None, response_format="wav")
    pcm = speech(server, input=text, response_format="pcm")
    assert pcm.status_code == 200
    assert pcm.headers["Content-Type"] == "audio/pcm"
    assert pcm.content == read_wav(wav.content)[2]


def test_streaming_sends_the_same_audio_sentence_by_sentence(server: ServerProcess):
    text = "First sentence here. 第二句话。And a third one!"
    whole = speech(server, input=text, response_format="pcm")
    before = server.metrics()
    with requests.post(
        f"{server.url}/v1/audio/speech",
        json={"input": text, "response_format": "pcm", "stream": True},
        stream=True,
        timeout=60,
    ) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in streamed.headers
        body = b"".join(streamed.iter_content(chunk_size=None))
    assert body == whole.content
    after = server.metrics()
    key = 'emotivoice_time_to_first_audio_seconds_count{stream="true"}'
    assert after[key] == before.get(key, 0) + 1
    # A streamed WAV starts with a header of unknown length, then the same samples.
    streamed_wav = speech(server, input=text, response_format="wav", stream=True).content
    assert streamed_wav[:4] == b"RIFF" and streamed_wav[44:] == whole.content


def test_openai_client(server: ServerProcess):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0)
    voices = requests.get(f"{server.url}/v1/voices", timeout=5).json()
    voice = voices["voices"][-1]
    result = client.audio.speech.create(
        model="emotivoice",
        voice=voice,
        input="Hello from the official client.",
        response_format="wav",
        instructions="Happy",
        speed=1.25,
    )
    rate, frames, _ = read_wav(result.content)
    assert rate == 16000 and frames > 0
    # EmotiVoice's own `prompt` field travels in extra_body; the same emotion, the same audio.
    same = client.audio.speech.create(
        model="emotivoice",
        voice=voice,
        input="Hello from the official client.",
        response_format="wav",
        speed=1.25,
        extra_body={"prompt": "Happy"},
    )
    assert same.content == result.content
    with client.audio.speech.with_streaming_response.create(
        model="emotivoice", voice=voice, input="One. Two.", response_format="pcm"
    ) as response:
        assert len(b"".join(response.iter_bytes())) > 0
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(model="emotivoice", voice=voice, input="x", speed=9)
    assert info.value.body["param"] == "speed"
    models = client.models.list()
    assert [m.id for m in models.data] == ["small"]


def test_voices(server: ServerProcess):
    body = requests.get(f"{server.url}/v1/voices", timeout=5).json()
    assert body["default"] == body["voices"][0]
    assert len(body["voices"]) >= 2


# -- bad input: a clear 4xx naming the field, and the server keeps serving ------------------


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": "x" * 4097}, 400, "input"),
        ({"input": "!!! ???"}, 400, "input"),
        ({"input": "Hello.", "voice": "no-such-speaker"}, 400, "voice"),
        ({"input": "Hello.", "response_format": "aac"}, 400, "response_format"),
        ({"input": "Hello.", "response_format": "wma"}, 400, "response_format"),
        ({"input": "Hello.", "speed": 0.1}, 400, "speed"),
        ({"input": "Hello.", "language": "klingon"}, 400, "language"),
        ({"input": "Hello.", "prompt": "Happy", "instructions": "Sad"}, 400, "instructions"),
        # Each of these used to be a 500 (TypeError in the tokenizer, OverflowError) or was
        # silently taken as the default format.
        ({"input": "\ud800hello"}, 400, "input"),
        ({"input": "Hello.", "prompt": "\udfffhappy"}, 400, "prompt"),
        ({"input": "Hello.", "speed": 10**400}, 400, "speed"),
        ({"input": "Hello.", "response_format": []}, 400, "response_format"),
        ({"input": "Hello.", "response_format": {}}, 400, "response_format"),
        ({"input": "Hello.", "stream_format": "websocket"}, 400, "stream_format"),
        ({"input": "Hello.", "stream_format": "sse", "response_format": "mp3"}, 400, None),
    ],
)
def test_bad_requests_name_the_field(server: ServerProcess, body, status, param):
    body.setdefault("response_format", "wav")
    response = requests.post(
        f"{server.url}/v1/audio/speech",
        # json.dumps keeps lone surrogates as \ud800 escapes and big integers as digits
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == (param or "response_format")
    assert error["message"]


def test_malformed_and_oversized_bodies(server: ServerProcess):
    url = f"{server.url}/v1/audio/speech"
    bad_json = requests.post(
        url, data=b'{"input": "Hello', headers={"Content-Type": "application/json"}, timeout=10
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["param"] == "body"
    not_object = requests.post(url, json=["Hello."], timeout=10)
    assert not_object.status_code == 400
    huge = requests.post(
        url,
        data=json.dumps({"input": "x" * 200_000}),
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert requests.get(url, timeout=10).status_code == 405
    assert requests.get(f"{server.url}/no/such/path", timeout=10).status_code == 404
    assert speech(server, input="Still serving.").status_code == 200


def test_deep_json_and_huge_chunked_bodies_are_client_errors_and_counted(server: ServerProcess):
    url = f"{server.url}/v1/audio/speech"
    before = server.metrics()
    deep = b'{"input": "Hi.", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    nested = requests.post(url, data=deep[:65_000], timeout=30)  # RecursionError, was a 500
    assert nested.status_code == 400, nested.text
    assert nested.json()["error"]["param"] == "body"

    def ten_megabytes():  # chunked: no Content-Length to refuse it by
        for _ in range(160):
            yield b"x" * 65536

    chunked = requests.post(url, data=ten_megabytes(), timeout=60)
    assert chunked.status_code == 413, chunked.text  # was a 400 "not valid JSON"
    assert chunked.json()["error"]["param"] == "body"
    after = server.metrics()
    for code, added in (("400", 1), ("413", 1)):
        key = f'emotivoice_speech_requests_total{{code="{code}"}}'
        assert after[key] == before.get(key, 0) + added, code
    assert speech(server, input="Still serving.").status_code == 200


def test_a_stream_checks_every_sentence_before_its_first_byte(server: ServerProcess):
    before = server.metrics()
    # The second sentence has letters but nothing the frontend can pronounce: it used to
    # fail after the 200 and the first sentence's audio had gone out.
    response = speech(server, input="Hello there. ü ü.", response_format="pcm", stream=True)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "input"
    after = server.metrics()
    code400 = 'emotivoice_speech_requests_total{code="400"}'
    assert after[code400] == before.get(code400, 0) + 1
    assert (
        after['emotivoice_speech_requests_total{code="200"}']
        == (before['emotivoice_speech_requests_total{code="200"}'])
    )


def test_a_stream_cut_short_counts_as_truncated_not_200(server: ServerProcess):
    before = server.metrics()
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    body = json.dumps({"input": text, "response_format": "pcm", "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # headers and the first audio
    # ... and the client went away mid-stream.
    key = 'emotivoice_speech_requests_total{code="truncated"}'
    deadline = time.monotonic() + 30
    while server.metrics().get(key, 0) == before.get(key, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = server.metrics()
    assert after[key] == before.get(key, 0) + 1
    code200 = 'emotivoice_speech_requests_total{code="200"}'
    assert after[code200] == before[code200]
    assert after["emotivoice_queue_depth"] == 0


def test_sse_stream_with_the_openai_client(server: ServerProcess):
    text = "First sentence here. And a second one!"
    raw = speech(server, input=text, response_format="pcm", stream=True).content
    before = server.metrics()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0)
    voice = requests.get(f"{server.url}/v1/voices", timeout=5).json()["default"]
    events = []
    with client.audio.speech.with_streaming_response.create(
        model="emotivoice", voice=voice, input=text, response_format="pcm", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    types = [e["type"] for e in events]
    assert types[-1] == "speech.audio.done" and set(types[:-1]) == {"speech.audio.delta"}
    assert len(types) >= 3  # one delta per sentence at least, then done
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert audio == raw  # the same samples as the raw stream
    assert events[-1]["usage"]["input_tokens"] == len(text)
    after = server.metrics()
    key = 'emotivoice_time_to_first_audio_seconds_count{stream="true"}'
    assert after[key] == before[key] + 1
    code200 = 'emotivoice_speech_requests_total{code="200"}'
    assert after[code200] == before[code200] + 1


# -- metrics -------------------------------------------------------------------------------


def test_metrics_move_and_a_repeated_prompt_skips_bert(server: ServerProcess):
    before = server.metrics()
    prompt = "A brand new prompt nobody used."
    assert speech(server, input="First request.", prompt=prompt).status_code == 200
    middle = server.metrics()
    assert speech(server, input="Second request.", prompt=prompt).status_code == 200
    after = server.metrics()
    hits, misses = (
        'emotivoice_embedding_cache_hits_total{kind="prompt"}',
        'emotivoice_embedding_cache_misses_total{kind="prompt"}',
    )
    assert middle[misses] == before[misses] + 1
    assert after[misses] == middle[misses]  # the second request did not run BERT on the prompt
    assert after[hits] == middle[hits] + 1
    code200 = 'emotivoice_speech_requests_total{code="200"}'
    assert after[code200] == before[code200] + 2
    count = 'emotivoice_speech_request_seconds_count{response_format="wav"}'
    assert after[count] == before[count] + 2
    assert after["emotivoice_audio_seconds_total"] > before["emotivoice_audio_seconds_total"]
    assert after["emotivoice_first_request_seconds"] > 0
    assert after["emotivoice_queue_depth"] == 0
    assert after["emotivoice_queue_capacity"] >= 1
    assert any(k.startswith("emotivoice_model_info{") for k in after)
    assert any(k.startswith("emotivoice_load_step_seconds{") for k in after)


# -- the pre-warm client -------------------------------------------------------------------


def test_prime_waits_for_ready_then_sends_the_warmup_requests(server: ServerProcess):
    before = server.metrics()
    env = {**os.environ, "EMOTIVOICE_WARMUP": json.dumps(WARMUP)}
    done = subprocess.run(
        [*server_command(), "prime", "--url", server.url, "--timeout", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    after = server.metrics()
    code200 = 'emotivoice_speech_requests_total{code="200"}'
    assert after[code200] == before[code200] + 2  # 2 phrases x 1 voice, prompts cycled
    assert "primed 2 requests, 0 failed" in done.stderr


def test_prime_gives_up_on_a_server_that_never_gets_ready():
    done = subprocess.run(
        [*server_command(), "prime", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not ready after" in done.stderr


def test_module_runs_as_script():
    done = subprocess.run(
        [sys.executable, "-m", "emotivoice_server.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "--model-dir" in done.stdout and "prime" in done.stdout


def test_an_old_kept_alive_connection_is_closed_after_its_answer(server: ServerProcess):
    """kube-proxy picks a pod per connection: a client that keeps one connection forever never
    follows a Service to a pool's fallback and back. Answers on a young connection keep it
    open; the first answer once it is older than CONNECTION_MAX_AGE_S closes it."""
    import http.client

    from emotivoice_server.http_worker import CONNECTION_MAX_AGE_S

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        opened = time.monotonic()
        answers = []
        # Bounded: one request every 0.2 s until the connection is closed, or twice its age.
        while time.monotonic() - opened < 2 * CONNECTION_MAX_AGE_S + 2:
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            answers.append((time.monotonic() - opened, response.getheader("Connection", "")))
            if response.getheader("Connection", "").lower() == "close":
                break
            time.sleep(0.2)
    finally:
        conn.close()
    age, header = answers[-1]
    assert header.lower() == "close", answers
    assert len(answers) >= 3 and all(h.lower() != "close" for _, h in answers[:-1]), answers
    assert CONNECTION_MAX_AGE_S < age < CONNECTION_MAX_AGE_S + 1.5, answers
