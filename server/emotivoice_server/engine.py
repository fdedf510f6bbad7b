"""The one path from text to waveform, shared by user requests and warm-up.

Warm-up is only worth something if it runs the code a request runs: the same sentence split,
the same cached embedding lookups, the same model calls on the same thread. Both go through
`SpeechEngine.render`, which runs on the model thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from emotivoice_server.embedding_cache import LruCache
from emotivoice_server.metrics import ServerMetrics
from emotivoice_server.model_thread import Ticket
from emotivoice_server.pieces import bound_pieces


class Synthesizer(Protocol):
    """The part of `emotivoice_tts.Synthesizer` the server uses (it does no tensor math itself)."""

    sample_rate: int
    speakers: list[str]
    device: Any
    precision: str

    def embed(self, text: str) -> Any: ...

    def synthesize(
        self,
        text: str,
        speaker: str,
        prompt: str = "",
        language: str | None = None,
        speed: float = 1.0,
        style_embedding: Any = None,
        content_embedding: Any = None,
    ) -> np.ndarray: ...

    def split_sentences(self, text: str) -> list[str]: ...

    def check(self, text: str, speaker: str, language: str | None = None) -> None: ...


class SpeechEngine:
    """A loaded synthesizer with its embedding caches; every model call goes through `runner`
    (the model thread's `call`), which also serializes them."""

    def __init__(
        self,
        synth: Synthesizer,
        runner: Callable[..., Any],
        metrics: ServerMetrics,
        prompt_cache: LruCache,
        content_cache: LruCache,
    ) -> None:
        self.synth = synth
        self._runner = runner
        self.metrics = metrics
        self.prompt_cache = prompt_cache
        self.content_cache = content_cache
        self.speakers: tuple[str, ...] = tuple(synth.speakers)
        self._speaker_set = frozenset(self.speakers)
        self.sample_rate = int(synth.sample_rate)

    @property
    def default_voice(self) -> str:
        return self.speakers[0]

    def has_voice(self, voice: str) -> bool:
        return voice in self._speaker_set

    def sentences(self, text: str) -> list[str]:
        """The model's sentence split, long sentences cut (see `pieces`), each piece with
        something to pronounce; each piece is synthesized on its own."""
        pieces = bound_pieces(self.synth.split_sentences(text))
        return [p for p in pieces if any(ch.isalnum() for ch in p)]

    def _embedding(self, cache: LruCache, kind: str, text: str) -> Any:
        def compute(key: str) -> Any:
            began = time.perf_counter()
            value = self.synth.embed(key)
            self.metrics.embedding_seconds.labels(kind=kind).observe(time.perf_counter() - began)
            return value

        value, hit = cache.get_or_compute(text, compute)
        (self.metrics.cache_hits if hit else self.metrics.cache_misses).labels(kind=kind).inc()
        self.metrics.cache_entries.labels(kind=kind).set(len(cache))
        return value

    def render(
        self,
        sentence: str,
        voice: str,
        prompt: str,
        language: str | None = None,
        speed: float = 1.0,
        ticket: Ticket | None = None,
    ) -> np.ndarray:
        """Synthesize one sentence on the model thread (`ticket`: see `model_thread`)."""
        return self._runner(self._render, sentence, voice, prompt, language, speed, ticket=ticket)

    def check(
        self,
        sentences: Sequence[str],
        voice: str,
        language: str | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        """Raise the error any of `sentences` would raise when rendered (a `ValueError`),
        without running the model; on the model thread, like everything that uses the model."""
        self._runner(self._check, sentences, voice, language, ticket=ticket)

    def _check(self, sentences: Sequence[str], voice: str, language: str | None) -> None:
        for sentence in sentences:
            self.synth.check(sentence, voice, language)

    def _render(
        self, sentence: str, voice: str, prompt: str, language: str | None, speed: float
    ) -> np.ndarray:
        style = self._embedding(self.prompt_cache, "prompt", prompt)
        content = self._embedding(self.content_cache, "content", sentence)
        return self.synth.synthesize(
            sentence,
            voice,
            prompt=prompt,
            language=language,
            speed=speed,
            style_embedding=style,
            content_embedding=content,
        )

    def render_all(
        self,
        sentences: Sequence[str],
        voice: str,
        prompt: str,
        language: str | None,
        speed: float,
        ticket: Ticket | None = None,
    ) -> np.ndarray:
        """A whole text: the sentences in order, concatenated (each one its own model call,
        so requests waiting behind a long text get their turn between its sentences)."""
        parts = [self.render(s, voice, prompt, language, speed, ticket) for s in sentences]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
