"""The frontend as a child process answers exactly what the in-process frontend does, reports a
start-up failure, survives a bad text and a killed child."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotivoice_tts import Synthesizer
from emotivoice_tts.errors import ModelLoadError
from emotivoice_tts.frontend import build_frontend
from emotivoice_tts.frontend.process import FrontendProcess

TEXTS = [
    ("Hello, world.", False),
    ("今天天气真好，我们去公园吧。", False),  # noqa: RUF001 (Chinese punctuation on purpose)
    ("Mixed 中英文 text with 2024 numbers.", False),
    ("Mixed 中英文 text with 2024 numbers.", True),
    ("Line one.\nLine two: \u00e9\u00e8 \U0001f600", False),
]


@pytest.fixture(scope="module")
def child(synth: Synthesizer):
    frontend = FrontendProcess(synth.spec.layout.lexicon)
    frontend.wait_ready()
    yield frontend
    frontend.close()


def test_child_answers_like_the_in_process_frontend(synth: Synthesizer, child) -> None:
    local = build_frontend(synth.spec.layout.lexicon)
    for text, english_numbers in TEXTS:
        assert child(text, english_numbers=english_numbers) == local(
            text, english_numbers=english_numbers
        )


def test_a_killed_child_is_replaced(child) -> None:
    before = child("Hello.")
    assert child._proc is not None
    child._proc.kill()
    child._proc.wait()
    assert child("Hello.") == before


def test_start_up_failure_is_named(tmp_path: Path) -> None:
    frontend = FrontendProcess(tmp_path / "no-such-lexicon.txt")
    try:
        with pytest.raises(ModelLoadError, match=r"text frontend: .*no-such-lexicon"):
            frontend.wait_ready()
    finally:
        frontend.close()


def test_synthesizer_runs_on_the_child(synth: Synthesizer, child) -> None:
    """The same audio whether the tokens come from the child or from the process itself."""
    from dataclasses import replace

    remote = replace(synth, frontend=child)
    text = "Hello, 世界."
    assert remote.phonemes(text) == synth.phonemes(text)
