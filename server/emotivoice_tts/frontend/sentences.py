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
    """Sentences with their punctuation, stripped. A piece with nothing to speak (only
    punctuation) joins the sentence before it, or the next one at the start; text with nothing
    to speak at all gives no sentences."""
    pieces: list[str] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    sentences: list[str] = []
    leading = ""
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if any(ch.isalnum() for ch in piece):
            sentences.append(leading + piece)
            leading = ""
        elif sentences:
            sentences[-1] += piece
        else:
            leading += piece
    return sentences
