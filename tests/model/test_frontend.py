# ruff: noqa: RUF001  (Chinese test text uses full-width punctuation on purpose)
"""Text frontend: phoneme sequences as EmotiVoice produces them, number reading, sentences.

Expected phonemes come from EmotiVoice's README/research examples (verified there against the
upstream frontend); English uses the small model's generated lexicon.
"""

from __future__ import annotations

import pytest

from emotivoice_tts import Synthesizer
from emotivoice_tts.frontend import split_sentences
from emotivoice_tts.frontend.chinese import split_syllable
from emotivoice_tts.frontend.numbers import to_chinese, to_english


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "我来到北京，清华大学",
            "<sos/eos> uo3 sp1 l ai2 sp0 d ao4 sp1 b ei3 sp0 j ing1 sp3 q ing1 sp0 h ua2 sp0 d a4 "
            "sp0 x ve2 <sos/eos>",
        ),
        (
            "今天天气真好。",
            "<sos/eos> j in1 sp0 t ian1 sp0 t ian1 sp0 q i4 sp1 zh en1 sp1 h ao3 <sos/eos>",
        ),
        ("Hello world", "<sos/eos> [HH] [AH0] [L] [OW1] engsp1 [W] [ER1] [L] [D] <sos/eos>"),
        # punctuation turns the word boundary into engsp4; a trailing boundary is dropped
        ("Hello, world.", "<sos/eos> [HH] [AH0] [L] [OW1] engsp4 [W] [ER1] [L] [D] <sos/eos>"),
        # language switches are marked
        ("Hello 你好", "<sos/eos> [HH] [AH0] [L] [OW1] eng_cn_sp n i3 sp0 h ao3 <sos/eos>"),
        ("你好 hello", "<sos/eos> n i3 sp0 h ao3 sp1 [HH] [AH0] [L] [OW1] <sos/eos>"),
    ],
)
def test_phonemes_match_emotivoice(synth: Synthesizer, text: str, expected: str) -> None:
    assert " ".join(synth.phonemes(text)) == expected


def test_digits_become_chinese_numerals_unless_english(synth: Synthesizer) -> None:
    assert synth.phonemes("3") == ["<sos/eos>", "s", "an1", "<sos/eos>"]
    # language="en" reads "3" as "three", spelled from the lexicon or letter names
    assert "s" not in synth.phonemes("3", language="en")


@pytest.mark.parametrize(
    ("number", "chinese"),
    [
        ("0", "零"),
        ("10", "十"),
        ("101", "一百零一"),
        ("1000010", "一百万零一十"),
        ("100010", "十万零一十"),
        ("508881", "五十万零八千八百八十一"),  # cn2an's quirk, kept to match upstream
        ("3.14", "三点一四"),
        ("2.", "二"),
        ("007", "七"),
    ],
)
def test_chinese_numbers(number: str, chinese: str) -> None:
    assert to_chinese(number) == chinese


def test_english_numbers() -> None:
    assert to_english("1024") == "one thousand twenty four"
    assert to_english("2.5") == "two point five"


@pytest.mark.parametrize(
    ("syllable", "parts"),
    [
        ("zhi1", ("zh", "iii1")),
        ("si4", ("s", "ii4")),
        ("yu2", ("", "v2")),
        ("yue4", ("y", "ve4")),  # upstream's misspelt rule, reproduced
        ("wang2", ("", "uang2")),
        ("jun1", ("j", "vn1")),
        ("gui4", ("g", "uei4")),
        ("liu2", ("l", "iou2")),
        ("huar1", ("h", "uar1")),
        ("n2", ("", "en2")),
        ("er2", ("", "er2")),
    ],
)
def test_pinyin_split(syllable: str, parts: tuple[str, str]) -> None:
    assert split_syllable(syllable) == parts


def test_split_sentences() -> None:
    text = (
        '你好。今天天气真好！Hello world. It costs 3.14 dollars, e.g. this one? "Yes." OK\n\nnext'
    )
    assert split_sentences(text) == [
        "你好。",
        "今天天气真好！",
        "Hello world.",
        "It costs 3.14 dollars, e.g. this one?",
        '"Yes."',
        "OK",
        "next",
    ]
    assert split_sentences("...!") == []  # nothing to speak: no sentence
    assert split_sentences("Hi!!! ...") == ["Hi!!!..."]
    assert split_sentences("...Hello") == ["...Hello"]
