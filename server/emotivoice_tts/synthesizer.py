"""Loading a model directory and turning text into audio: the package's public entry point."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoints import cast_floats
from .config import precision_dtype
from .convert import (
    SourceId,
    is_current,
    read_serving,
    released_state,
    serving_path,
    write_serving,
)
from .errors import (
    EmptyInputError,
    UnknownSpeakerError,
    UnknownTokenError,
    UnsupportedLanguageError,
)
from .frontend import G2P, build_frontend, split_sentences
from .jets import JetsModel, JetsOutput
from .layout import LOAD_FORMATS, ModelLayout
from .spec import ModelSpec, materialize
from .style import StyleEncoder, load_tokenizer
from .wordpiece import WordPieceTokenizer

log = logging.getLogger(__name__)

# `language` values: upstream's default "zh_us" and anything Chinese mean its mixed frontend;
# English reads digits as English words instead of Chinese numerals.
AUTO_LANGUAGES = {"", "auto", "mixed", "zh_us"}


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Synthesizer:
    spec: ModelSpec
    generator: JetsModel
    style: StyleEncoder
    tokenizer: WordPieceTokenizer
    frontend: G2P
    device: str
    precision: str
    load_timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._token_ids = {t: i for i, t in enumerate(self.spec.tokens)}
        self._speaker_ids = {s: i for i, s in enumerate(self.spec.speakers)}

    @property
    def sample_rate(self) -> int:
        return self.spec.config.sample_rate

    @property
    def speakers(self) -> list[str]:
        return list(self.spec.speakers)

    @property
    def dtype(self) -> torch.dtype:
        return precision_dtype(self.precision)

    def split_sentences(self, text: str) -> list[str]:
        return split_sentences(text)

    def phonemes(self, text: str, language: str | None = None) -> list[str]:
        """The token sequence for `text`, `<sos/eos>` first and last."""
        return self.frontend(text, english_numbers=_english_numbers(language))

    @torch.inference_mode()
    def embed(self, text: str) -> torch.Tensor:
        """BERT pooled output (1, hidden) for a prompt or an input text, on the model's device."""
        enc = self.tokenizer.encode(text)
        return self.style(
            torch.tensor([enc.input_ids], device=self.device),
            torch.tensor([enc.token_type_ids], device=self.device),
            torch.tensor([enc.attention_mask], device=self.device),
        )

    def check(self, text: str, speaker: str, language: str | None = None) -> None:
        """Raise the error `run` would raise for this text, without running the model: what a
        streamed response checks for every sentence before its first byte goes out."""
        self._checked(text, speaker, language)

    def _checked(self, text: str, speaker: str, language: str | None) -> tuple[int, list[str]]:
        speaker_id = self._speaker_ids.get(speaker)
        if speaker_id is None:
            raise UnknownSpeakerError(speaker, self.spec.speakers)
        phonemes = self.phonemes(text, language)
        if len(phonemes) <= 2:
            raise EmptyInputError(text)
        unknown = [p for p in phonemes if p not in self._token_ids]
        if unknown:
            raise UnknownTokenError(unknown, text)
        return speaker_id, phonemes

    @torch.inference_mode()
    def run(
        self,
        text: str,
        speaker: str,
        prompt: str = "",
        language: str | None = None,
        speed: float = 1.0,
        style_embedding: torch.Tensor | None = None,
        content_embedding: torch.Tensor | None = None,
    ) -> JetsOutput:
        """Like synthesize, but returns the model's tensors (waveform, durations, mels)."""
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        speaker_id, phonemes = self._checked(text, speaker, language)
        if style_embedding is None:
            style_embedding = self.embed(prompt)
        if content_embedding is None:
            content_embedding = self.embed(text)
        tokens = torch.tensor([[self._token_ids[p] for p in phonemes]], device=self.device)
        return self.generator(
            tokens,
            torch.tensor([tokens.shape[1]], device=self.device),
            torch.tensor([speaker_id], device=self.device),
            style_embedding.to(self.device).reshape(1, -1),
            content_embedding.to(self.device).reshape(1, -1),
            speed=float(speed),
        )

    def synthesize(
        self,
        text: str,
        speaker: str,
        prompt: str = "",
        language: str | None = None,
        speed: float = 1.0,
        style_embedding: torch.Tensor | None = None,
        content_embedding: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Mono float32 audio in [-1, 1] at `sample_rate`.

        `prompt` describes the emotion/style ("Happy", "开心"); `speed` scales the speaking rate
        (2.0 = twice as fast) through the predicted durations. Embeddings the caller has cached
        skip the BERT runs.
        """
        out = self.run(text, speaker, prompt, language, speed, style_embedding, content_embedding)
        return out.wav[0, 0].float().cpu().numpy()


def load_synthesizer(
    model_dir: Path,
    precision: str = "fp32",
    device: str | None = None,
    load_format: str = "converted",
    frontend: G2P | None = None,
    verified: Collection[str] | None = None,
) -> Synthesizer:
    """Loads a model directory (EmotiVoice's released layout, see `layout`) onto a device.

    `converted` (default) uses the serving files when current; otherwise converts the released
    checkpoints, writes the serving files for next time (when the directory is writable) and
    goes on with the result. `released` always loads the released checkpoints and writes nothing
    (for a read-only volume, or to rule the conversion out). `load_timings` tells where the time went.
    `verified` (the relative paths a completion marker lists) restricts every file read to those:
    checkpoints, the lists and the serving files (without a listed one the released checkpoint is
    converted in memory, and nothing is written into the directory).
    A `frontend` built beforehand (`frontend.build_frontend`, e.g. on another thread while torch
    was being imported) is used as is.
    """
    if load_format not in LOAD_FORMATS:
        raise ValueError(f"load_format {load_format!r} is not one of {', '.join(LOAD_FORMATS)}")
    dtype = precision_dtype(precision)
    device = device or default_device()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    spec = ModelSpec.read(ModelLayout.discover(Path(model_dir), verified))
    lap("read_spec")
    states: dict[str, dict[str, torch.Tensor]] = {}
    for role, source in spec.layout.sources().items():
        serving = serving_path(source, precision)
        if (
            load_format == "converted"
            and spec.layout.is_verified(serving)
            and is_current(source, precision)
        ):
            states[role] = read_serving(source, precision, device)
            lap("read_serving_weights")
            continue
        state = released_state(spec, role)
        lap("read_released_weights")
        if load_format == "released":
            states[role] = cast_floats(state, dtype)
            continue
        if spec.layout.verified is not None:
            # Behind the fetch step the cache is its alone (and read-only here): a file written
            # now would not be in the marker, so it would never be trusted; convert in memory.
            log.info(
                "no verified serving file for %s (%s): converting in memory (the fetch step's "
                "--after-verify hook writes it)",
                source,
                precision,
            )
            states[role] = cast_floats(state, dtype)
            continue
        log.info("no current serving file for %s (%s): converting", source, precision)
        try:
            write_serving(source, precision, state, SourceId.of(source))
        except OSError as exc:
            log.warning("cannot write the serving file next to %s (%s); continuing", source, exc)
        lap("write_serving_weights")
        states[role] = cast_floats(state, dtype)

    generator = spec.empty_generator()
    materialize(generator, states.pop("generator"), device)
    style = spec.empty_style()
    materialize(style, states.pop("style"), device)
    lap("build_modules")
    tokenizer = load_tokenizer(spec.layout.bert_dir)
    lap("load_tokenizer")
    if frontend is None:
        frontend = build_frontend(spec.layout.lexicon)
        lap("load_frontend")
    return Synthesizer(spec, generator, style, tokenizer, frontend, device, precision, timings)


def _english_numbers(language: str | None) -> bool:
    lang = (language or "").strip().lower()
    if lang in AUTO_LANGUAGES or lang.startswith("zh"):
        return False
    if lang.startswith("en"):
        return True
    raise UnsupportedLanguageError(language)
