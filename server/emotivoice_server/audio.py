"""Turning the model's float waveform into response bytes (WAV, raw PCM, and what soundfile adds).

WAV and PCM are written here with the standard library so that they always work and can be
streamed: a streamed WAV carries the "unknown length" sizes (0xFFFFFFFF) that players accept.
FLAC, MP3 and Opus come from libsndfile (through `soundfile`) only when it is installed and
its build lists the format; otherwise the request validator refuses them by name.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable

import numpy as np

CONTENT_TYPES = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
}
# soundfile (format, subtype) per response format.
_SOUNDFILE_FORMATS = {
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
}
UNKNOWN_SIZE = 0xFFFFFFFF
BYTES_PER_SAMPLE = 2


def available_formats() -> frozenset[str]:
    """wav and pcm always; flac/mp3/opus when soundfile's libsndfile build can write them."""
    formats = {"wav", "pcm"}
    try:
        import soundfile
    except (ImportError, OSError):
        return frozenset(formats)
    major = soundfile.available_formats()
    for name, (container, subtype) in _SOUNDFILE_FORMATS.items():
        if container in major and subtype in soundfile.available_subtypes(container):
            formats.add(name)
    return frozenset(formats)


def to_pcm16(waveform: np.ndarray) -> bytes:
    """Float samples -> 16-bit little-endian signed PCM, clipped to [-1, 1] (no wrap-around)."""
    samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
    scaled = np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    return scaled.tobytes()


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """A 44-byte PCM WAV header; `data_bytes` None writes the streaming (unknown size) form."""
    if data_bytes is None:
        riff_size = data_size = UNKNOWN_SIZE
    else:
        data_size = data_bytes
        riff_size = 36 + data_bytes
    byte_rate = sample_rate * BYTES_PER_SAMPLE
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, byte_rate, BYTES_PER_SAMPLE, 16)
        + b"data"
        + struct.pack("<I", data_size)
    )


def encode(waveform: np.ndarray, sample_rate: int, response_format: str) -> bytes:
    """The whole response body for one waveform."""
    if response_format == "pcm":
        return to_pcm16(waveform)
    if response_format == "wav":
        pcm = to_pcm16(waveform)
        return wav_header(sample_rate, len(pcm)) + pcm
    if response_format in _SOUNDFILE_FORMATS:
        import soundfile

        container, subtype = _SOUNDFILE_FORMATS[response_format]
        out = io.BytesIO()
        soundfile.write(
            out,
            np.asarray(waveform, dtype=np.float32).reshape(-1),
            sample_rate,
            format=container,
            subtype=subtype,
        )
        return out.getvalue()
    raise ValueError(f"cannot encode response_format {response_format!r}")


def stream_chunks(
    waveforms: Iterable[np.ndarray], sample_rate: int, response_format: str
) -> Iterable[bytes]:
    """Bytes of a streamed response, one chunk per waveform (WAV: the header rides the first)."""
    first = True
    for waveform in waveforms:
        chunk = to_pcm16(waveform)
        if first and response_format == "wav":
            chunk = wav_header(sample_rate, None) + chunk
        first = False
        yield chunk
