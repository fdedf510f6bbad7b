"""Chinese text -> EmotiVoice phonemes: jieba words, pypinyin syllables, initial + toned final.

Boundary tokens: `sp0` between syllables of a word, `sp1` after each word, `sp3` replacing the
`sp1` before punctuation. Syllable spelling follows EmotiVoice's token inventory (zi/ci/si/ri ->
`ii`, zhi/chi/shi -> `iii`, y-/w- spellings rewritten to i-/u-/v- finals, ...).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

CHINESE_PUNCTUATION = re.compile(
    "[\u3002\uff0c\uff1f\uff01\uff1b\uff1a\u201c\u201d\u2018\u2019\u300a\u300b\u3008\u3009"
    "\u3010\u3011\u300e\u300f\u2014\u2026\u3001\uff08\uff09]"
)
SYLLABLE = re.compile(r"^[a-z]+[1-5]$")
STANDALONE_NASAL = re.compile(r"^(n|ng|m)$")
VOWEL = re.compile("a|e|i|o|u|v")
# zero-initial spellings -> final (EmotiVoice's inventory writes no y/w initials)
Y_I_FINALS = {"ya", "yan", "yang", "yao", "ye", "yong", "you"}
Y_DROP = {"yi", "yin", "ying"}
# "yue" is absent on purpose: upstream misspells it ("yue "), so yue falls to the generic rule
# (initial "y", final "ve"), and the released token list was built from that output.
Y_V_FINALS = {"yu", "yv", "yuan", "yvan", "yve", "yun", "yvn"}
FINAL_REWRITES = {"ui": "uei", "iu": "iou", "un": "uen", "ue": "ve"}


def split_syllable(syllable: str) -> tuple[str, str]:
    """'zhang1' -> ('zh', 'ang1'); 'er2' -> ('', 'er2'); 'huar1' -> ('h', 'uar1')."""
    tone, py = syllable[-1], syllable[:-1]
    if STANDALONE_NASAL.match(py):
        py = "e" + py
    erhua = ""
    if py.endswith("r"):  # erhua (and "er" itself: final "e" + "r")
        erhua, py = "r", py[:-1]
    if py in ("zi", "ci", "si", "ri"):
        initial, final = py[:1], "ii"
    elif py in ("zhi", "chi", "shi"):
        initial, final = py[:2], "iii"
    elif py in Y_I_FINALS:
        initial, final = "", "i" + py[1:]
    elif py in Y_DROP:
        initial, final = "", py[1:]
    elif py in Y_V_FINALS:
        initial, final = "", "v" + py[2:]
    elif py == "wu":
        initial, final = "", "u"
    elif py.startswith("w"):
        initial, final = "", "u" + py[1:]
    elif len(py) >= 2 and py[0] in "jqx" and py[1] == "u":
        initial, final = py[0], "v" + py[2:]
    else:
        vowel = VOWEL.search(py)
        if vowel is None:
            return "", syllable  # not a syllable we can split; the token check reports it
        initial, final = py[: vowel.start()], py[vowel.start() :]
        final = FINAL_REWRITES.get(final, final)
    return initial, final + erhua + tone


def _is_punctuation(item: str) -> bool:
    # `in string.punctuation` is a substring test, as upstream does it ("()" counts, "ab" not).
    return bool(CHINESE_PUNCTUATION.search(item)) or item in string.punctuation


class ChineseG2P:
    """Needs jieba and pypinyin (with the cc-cedict phrase data that EmotiVoice loads)."""

    def __init__(self, to_numerals: Callable[[str], str]) -> None:
        import jieba
        from pypinyin import Style, pinyin
        from pypinyin_dict.phrase_pinyin_data import cc_cedict

        cc_cedict.load()
        jieba.setLogLevel(60)  # silence its start-up banner on stderr
        jieba.initialize()  # build the prefix dictionary now, not on the first request
        self._cut = jieba.cut
        self._pinyin = lambda text: pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
        self._to_numerals = to_numerals
        # jieba's HMM tables and pypinyin's phrase index load lazily: pay for that here, at load
        # time, not in the first request.
        self("预热一下中文分词和拼音,好吗")

    def __call__(self, text: str) -> list[str]:
        """Phonemes of a Chinese run, without utterance markers."""
        # Each chunk is one word's phonemes or one boundary; a punctuation mark replaces the
        # previous chunk (normally the word's sp1) with sp3. The first token is then dropped: it
        # stands in for upstream's leading <sos/eos>, which a leading punctuation mark replaces.
        chunks: list[list[str]] = [["<sos/eos>"]]
        for word in self._cut(text):
            if word == " ":
                continue
            syllables = [item[0] for item in self._pinyin(self._to_numerals(word))]
            syllables = [s for s in syllables if s.strip()]
            if not syllables:
                continue
            if any(_is_punctuation(s) for s in syllables):
                chunks.pop()
                chunks.append(["sp3"])
                continue
            word_tokens: list[str] = []
            for i, syllable in enumerate(syllables):
                if i:
                    word_tokens.append("sp0")
                word_tokens.extend(t for t in split_syllable(syllable) if t)
            chunks.append(word_tokens)
            chunks.append(["sp1"])
        tokens = [t for chunk in chunks for t in chunk]
        return tokens[1:]
