"""Text frontend: Chinese/English text -> EmotiVoice phoneme tokens, and sentence splitting.

Nothing here imports torch, so the frontend can be built while torch is still being imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .chinese import ChineseG2P
from .english import EnglishG2P, read_lexicon
from .mixed import MixedG2P
from .numbers import digits_to_chinese
from .sentences import split_sentences


class G2P(Protocol):
    """Text -> phoneme tokens: `MixedG2P`, or `process.FrontendProcess` in a child process."""

    def __call__(self, text: str, *, english_numbers: bool = False) -> list[str]: ...


def build_frontend(lexicon: Path) -> MixedG2P:
    """The mixed Chinese/English frontend with its dictionaries loaded (about a second)."""
    return MixedG2P(
        chinese=ChineseG2P(digits_to_chinese), english=EnglishG2P(read_lexicon(lexicon))
    )


__all__ = [
    "G2P",
    "ChineseG2P",
    "EnglishG2P",
    "MixedG2P",
    "build_frontend",
    "read_lexicon",
    "split_sentences",
]
