"""Fixtures for the model tests: a small random-weight model in EmotiVoice's released layout,
written once per session into a temporary folder (about a second), and a synthesizer loaded from
it through the real loading path on CPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emotivoice_tts import Synthesizer, load_synthesizer
from emotivoice_tts.testmodel import write_model


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pristine small model. Tests that modify a model directory use `model_copy`."""
    return write_model(tmp_path_factory.mktemp("model") / "small", "small", seed=0)


@pytest.fixture(scope="session")
def synth(small_model_dir: Path) -> Synthesizer:
    return load_synthesizer(small_model_dir, precision="fp32", device="cpu")


@pytest.fixture
def model_copy(small_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the released files (no serving files) that a test may change."""
    target = tmp_path / "model"
    shutil.copytree(small_model_dir, target, ignore=shutil.ignore_patterns("*.safetensors"))
    return target
