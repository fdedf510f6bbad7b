"""Bounding the length of what goes into one model call.

The model's frame decoder attends over every frame of its input (cost and memory grow with the
square of the length), so a 4096-character input without a full stop must not reach it in one
piece. Sentences longer than the bound are cut at the last comma, then the last space, before
it, and only as a last resort in the middle of a word.
"""

from __future__ import annotations

from collections.abc import Iterable

# About 30 English words or 120 Chinese characters: a long sentence, a few seconds of speech.
MAX_PIECE_CHARS = 120
# ASCII and full-width comma, ideographic comma, semicolons and colons.
_SOFT_BREAKS = ",\uff0c\u3001;\uff1b:\uff1a"


def _cut_point(text: str, limit: int) -> int:
    window = text[:limit]
    for breaks in (_SOFT_BREAKS, " "):
        cut = max(window.rfind(ch) for ch in breaks)
        if cut >= limit // 3:
            return cut + 1
    return limit


def bound_pieces(sentences: Iterable[str], max_chars: int = MAX_PIECE_CHARS) -> list[str]:
    """Each sentence as is when short enough, otherwise cut into pieces of at most max_chars."""
    out: list[str] = []
    for sentence in sentences:
        rest = sentence.strip()
        while len(rest) > max_chars:
            cut = _cut_point(rest, max_chars)
            head, rest = rest[:cut].strip(), rest[cut:].strip()
            if head:
                out.append(head)
        if rest:
            out.append(rest)
    return out
