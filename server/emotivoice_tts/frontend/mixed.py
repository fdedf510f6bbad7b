"""Mixed Chinese/English text -> the phoneme sequence of one utterance (EmotiVoice's g2p_cn_en).

Digits are first read as Chinese numerals (upstream does this for every input; `language="en"`
reads them as English words instead). The text is then cut into Chinese runs (CJK characters and
Chinese punctuation) and other runs; each goes to its frontend, with `eng_cn_sp` / `cn_eng_sp` at
language switches, and the whole is wrapped in `<sos/eos>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .chinese import ChineseG2P
from .english import EnglishG2P
from .numbers import DIGIT_RUN, digits_to_chinese, digits_to_english

CJK = re.compile("[\u4e00-\u9fa5]")
RUNS = re.compile(
    "([^\u4e00-\u9fa5]+|[ \u3002\uff0c\uff1f\uff01\uff1b\uff1a\u201c\u201d\u2018\u2019\u300a"
    "\u300b\u3008\u3009\u3010\u3011\u300e\u300f\u2014\u2026\u3001\uff08\uff09\u4e00-\u9fa5]+)"
)
BOUNDARY = "<sos/eos>"


@dataclass
class MixedG2P:
    chinese: ChineseG2P
    english: EnglishG2P

    def __call__(self, text: str, *, english_numbers: bool = False) -> list[str]:
        """The full utterance, `<sos/eos>` first and last."""
        text = digits_to_english(text) if english_numbers else digits_to_chinese(text)
        has_chinese = CJK.search(text) is not None
        tokens = [BOUNDARY]
        current = ""
        for part in filter(None, RUNS.split(text)):
            if part == " ":
                continue
            if (DIGIT_RUN.match(part) and (has_chinese or current == "")) or CJK.search(part):
                if current == "en":
                    tokens.append("eng_cn_sp")
                phonemes = self.chinese(part)
                current = "cn"
            else:
                if current == "cn" and "sp" not in tokens[-1]:
                    tokens.append("cn_eng_sp")
                phonemes = self.english(part)
                if not phonemes:
                    continue
                current = "en"
            tokens.extend(phonemes)
        if "sp" in tokens[-1]:
            tokens.pop()
        tokens.append(BOUNDARY)
        return tokens
