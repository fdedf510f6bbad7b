# ruff: noqa: RUF001  (Chinese test text uses full-width punctuation on purpose)
"""Synthesis through the loaded small model: shapes, rate, speed, determinism, conditioning and
request errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotivoice_tts import (
    EmptyInputError,
    Synthesizer,
    UnknownSpeakerError,
    UnknownTokenError,
    load_synthesizer,
)

HOP = 256  # samples per frame: product of the upsampling rates [8, 8, 2, 2]


@pytest.mark.parametrize(
    ("text", "speaker", "prompt"),
    [
        ("Hello world, this is a test.", "8051", "Happy"),
        ("今天天气真好。", "11614", "开心"),
        ("我来到北京，清华大学", "9017", "Sad"),
        ("Good morning 早上好", "6097", ""),
    ],
)
def test_audio_shape_and_range(synth: Synthesizer, text: str, speaker: str, prompt: str) -> None:
    out = synth.run(text, speaker, prompt)
    audio = synth.synthesize(text, speaker, prompt)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    frames = int(out.durations.sum())
    assert len(audio) == frames * HOP
    # each token lasts about 5 frames in the test model: the length follows the text
    tokens = len(synth.phonemes(text))
    assert 3 * tokens <= frames <= 7 * tokens


def test_deterministic(synth: Synthesizer) -> None:
    a = synth.synthesize("Hello world", "8051", "Happy")
    b = synth.synthesize("Hello world", "8051", "Happy")
    np.testing.assert_array_equal(a, b)


def test_speaker_and_prompt_condition_the_output(synth: Synthesizer) -> None:
    base = synth.synthesize("Hello world", "8051", "Happy")
    other_speaker = synth.synthesize("Hello world", "11614", "Happy")
    other_prompt = synth.synthesize("Hello world", "8051", "Sad")
    for other in (other_speaker, other_prompt):
        n = min(len(base), len(other))
        assert not np.allclose(base[:n], other[:n])


def test_speed_scales_duration(synth: Synthesizer) -> None:
    text = "The weather is very nice today"
    normal = synth.run(text, "8051").durations
    fast = synth.run(text, "8051", speed=2.0).durations
    slow = synth.run(text, "8051", speed=0.5).durations
    n, f, s = (int(d.sum()) for d in (normal, fast, slow))
    assert f < n < s
    # durations are divided by speed before rounding: within one frame per token
    tokens = normal.shape[1]
    assert abs(f - n / 2) <= tokens / 2 + 1
    assert abs(s - 2 * n) <= tokens
    assert len(synth.synthesize(text, "8051", speed=2.0)) == f * HOP


def test_cached_embeddings_give_the_same_audio(synth: Synthesizer) -> None:
    style, content = synth.embed("Happy"), synth.embed("Hello world")
    assert style.shape == (1, synth.style.bert.config.hidden_size)
    direct = synth.synthesize("Hello world", "8051", "Happy")
    cached = synth.synthesize(
        "Hello world", "8051", style_embedding=style, content_embedding=content
    )
    np.testing.assert_array_equal(direct, cached)


def test_unknown_speaker(synth: Synthesizer) -> None:
    with pytest.raises(UnknownSpeakerError, match=r"voice 'nobody' .* 6 speakers, e\.g\. '8051'"):
        synth.synthesize("Hello", "nobody")


def test_unknown_token(model_copy) -> None:
    tokenlist = model_copy / "data/youdao/text/tokenlist"
    tokenlist.write_text(tokenlist.read_text().replace("[HH]\n", "[XX]\n"), encoding="utf-8")
    synth = load_synthesizer(model_copy, "fp32", "cpu")
    with pytest.raises(UnknownTokenError, match=r"'\[HH\]'") as info:
        synth.synthesize("Hello world", "8051")
    assert isinstance(info.value, ValueError)
    synth.synthesize("world", "8051")  # words without the token still work


@pytest.mark.parametrize("text", ["", "   ", "!!! ...", "\U0001f600"])
def test_nothing_to_speak(synth: Synthesizer, text: str) -> None:
    with pytest.raises(EmptyInputError, match="nothing to speak"):
        synth.synthesize(text, "8051")


@pytest.mark.parametrize("speed", [0, -1.0, float("nan"), float("inf")])
def test_bad_speed(synth: Synthesizer, speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be a positive number"):
        synth.synthesize("Hello", "8051", speed=speed)


def test_bad_language(synth: Synthesizer) -> None:
    with pytest.raises(ValueError, match="language 'fr' is not supported"):
        synth.synthesize("Hello", "8051", language="fr")


def test_long_text_is_cut_for_bert_only(synth: Synthesizer) -> None:
    """BERT takes at most 512 tokens; the content embedding uses the start of longer input."""
    long_text = "你好" * 400
    embedding = synth.embed(long_text)
    assert embedding.shape[0] == 1 and torch.isfinite(embedding).all()
