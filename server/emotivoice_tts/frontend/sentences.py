"""Cutting long input into sentences, so a server can synthesize and stream one at a time."""

from __future__ import annotations

import re

# Sentence ends: Chinese and English terminal punctuation (a run of them), or a line break.
# A full stop between digits (3.14) or before a lower-case letter (e.g. "e.g. this") is not an end.
CLOSERS = "\u201d\u2019\"')\uff09"  # closing quotes and brackets stay with their sentence
SENTENCE_END = re.compile(
    "[\u3002\uff01\uff1f\uff1b!?;\u2026]+[" + CLOSERS + "]*"
    "|\\.(?![\\d.]|\\s*[a-z])[" + CLOSERS + "]*"
    "|\n+"
)


def split_sentences(text: str) -> list[str]:
    """Sentences with their punctuation, stripped; pieces with nothing but punctuation are merged
    into the sentence before them. Joining the result with spaces gives the input back, modulo
    whitespace."""
    sentences: list[str] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        _append(sentences, text[start : match.end()])
        start = match.end()
    _append(sentences, text[start:])
    return sentences


def _append(sentences: list[str], piece: str) -> None:
    piece = piece.strip()
    if not piece:
        return
    if sentences and not any(ch.isalnum() for ch in piece):
        sentences[-1] += piece
    else:
        sentences.append(piece)
