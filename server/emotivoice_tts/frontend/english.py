"""English text -> EmotiVoice phonemes from a pronunciation lexicon (ARPAbet with stress).

Each word's phones are written `[PH]` and followed by `engsp1`; a punctuation mark turns the
preceding boundary into `engsp4`. Upstream sends words missing from the lexicon to the neural
g2p_en model, which needs NLTK data downloaded at run time; a server that must start offline
cannot do that, so here such a word is spelled letter by letter (its letters' names, e.g.
"TTS" -> T T S). Words in the lexicon, which covers ordinary English, read exactly as upstream.
"""

from __future__ import annotations

import re
from pathlib import Path

WORD_SPLIT = re.compile(r"([,;.\-\?\!\s+])")
# Lexicon symbols that are not phones.
NON_PHONES = {",", " ", "'"}
# How each letter's name is pronounced (used for words the lexicon does not have).
# fmt: off
LETTER_NAMES = {
    "a": "EY1", "b": "B IY1", "c": "S IY1", "d": "D IY1", "e": "IY1", "f": "EH1 F",
    "g": "JH IY1", "h": "EY1 CH", "i": "AY1", "j": "JH EY1", "k": "K EY1", "l": "EH1 L",
    "m": "EH1 M", "n": "EH1 N", "o": "OW1", "p": "P IY1", "q": "K Y UW1", "r": "AA1 R",
    "s": "EH1 S", "t": "T IY1", "u": "Y UW1", "v": "V IY1", "w": "D AH1 B AH0 L Y UW0",
    "x": "EH1 K S", "y": "W AY1", "z": "Z IY1",
}
# fmt: on


def read_lexicon(path: Path) -> dict[str, list[str]]:
    """word (lower-cased) -> phones; the first entry of a repeated word wins, like upstream."""
    lexicon: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = re.split(r"\s+", line.strip("\n"))
            word = parts[0].lower()
            if word and word not in lexicon:
                lexicon[word] = [p for p in parts[1:] if p]
    return lexicon


class EnglishG2P:
    def __init__(self, lexicon: dict[str, list[str]]) -> None:
        self.lexicon = lexicon

    def spell(self, word: str) -> list[str]:
        """Phones of an out-of-lexicon word: its letters' names; other characters are silent."""
        phones: list[str] = []
        for ch in word.lower():
            phones.extend(LETTER_NAMES.get(ch, "").split())
        return phones

    def __call__(self, text: str) -> list[str]:
        """Phonemes of an English run, without utterance markers."""
        phones: list[str] = []
        for word in (w for w in WORD_SPLIT.split(text) if w not in ("", " ")):
            entry = self.lexicon.get(word.lower())
            if entry is not None:
                phones.extend(f"[{ph}]" for ph in entry if ph not in NON_PHONES)
                if phones and "sp" not in phones[-1]:
                    phones.append("engsp1")
            elif word.isspace():
                continue
            elif not any(ch.isalnum() for ch in word):
                # punctuation: replaces the last token (normally the word boundary) with engsp4
                if phones:
                    phones.pop()
                    phones.append("engsp4")
            else:
                spelled = self.spell(word)
                phones.extend(f"[{ph}]" for ph in spelled)
        if phones and "engsp" in phones[-1]:
            phones.pop()
        return phones
