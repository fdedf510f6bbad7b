"""Audio encoding: WAV and PCM bytes that standard readers accept, streamed or whole."""

from __future__ import annotations

import io
import wave

import numpy as np

from emotivoice_server import audio


def test_wav_reads_back_with_the_standard_library():
    t = np.arange(1600, dtype=np.float32) / 16000
    waveform = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = audio.encode(waveform, 16000, "wav")
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getframerate() == 16000
        assert reader.getnchannels() == 1
        assert reader.getsampwidth() == 2
        assert reader.getnframes() == 1600
        samples = np.frombuffer(reader.readframes(1600), dtype="<i2")
    assert np.abs(samples / 32767.0 - waveform).max() < 1e-4


def test_pcm_is_clipped_not_wrapped():
    pcm = np.frombuffer(audio.to_pcm16(np.array([1.5, -1.5, 1.0, 0.0])), dtype="<i2")
    assert pcm.tolist() == [32767, -32767, 32767, 0]


def test_stream_has_one_header_then_raw_samples():
    parts = [np.full(10, 0.25, np.float32), np.full(5, -0.25, np.float32)]
    chunks = list(audio.stream_chunks(parts, 16000, "wav"))
    assert len(chunks) == 2
    assert chunks[0][:4] == b"RIFF" and len(chunks[0]) == 44 + 20
    assert len(chunks[1]) == 10
    header = chunks[0][:44]
    assert header[4:8] == b"\xff\xff\xff\xff"  # length unknown while streaming
    pcm_chunks = list(audio.stream_chunks(parts, 16000, "pcm"))
    assert b"".join(pcm_chunks) == audio.to_pcm16(np.concatenate(parts))


def test_available_formats_always_has_wav_and_pcm():
    assert {"wav", "pcm"} <= audio.available_formats()
    assert set(audio.available_formats()) <= set(audio.CONTENT_TYPES)
