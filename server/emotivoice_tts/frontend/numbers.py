"""Reading digits aloud: Chinese numerals (what EmotiVoice does to every input) and English words.

EmotiVoice converts every digit run to Chinese numerals before anything else, even in English text,
because its lexicon frontend has no number reading. `to_chinese` follows the same reading rules
(cn2an's "low" mode): 10 -> 十, 101 -> 一百零一, 100010 -> 十万零一十, 3.14 -> 三点一四.
"""

from __future__ import annotations

import re

DIGIT_RUN = re.compile(r"(\d[\d.]*)")

CN_DIGITS = "零一二三四五六七八九"
# The unit spoken after the digit at each position, counted from the right.
CN_UNITS = (
    "",
    "十",
    "百",
    "千",
    "万",
    "十",
    "百",
    "千",
    "亿",
    "十",
    "百",
    "千",
    "万",
    "十",
    "百",
    "千",
)


def integer_to_chinese(digits: str) -> str:
    """Reads an integer the way EmotiVoice's bundled cn2an does, quirks included.

    Walk the digits from the left; a non-zero digit says itself and its unit; a zero at a group
    boundary (every fourth position) says the group's unit, and any other zero leaves one 零;
    runs of 零 and 零 before a group unit then collapse. Its quirk is kept on purpose, so that our
    phonemes equal upstream's: a zero right before 万 still leaves a 零 (508881 ->
    五十万零八千八百八十一). Longer numbers than the units cover are read digit by digit.
    """
    digits = str(int(digits))
    if len(digits) > len(CN_UNITS):
        return "".join(CN_DIGITS[int(c)] for c in digits)
    n = len(digits)
    out = ""
    for i, ch in enumerate(digits):
        position = n - i - 1
        if ch != "0":
            out += CN_DIGITS[int(ch)] + CN_UNITS[position]
            continue
        if position % 4 == 0:
            out += "零" + CN_UNITS[position]
        if i > 0 and not out.endswith("零"):
            out += "零"
    for old, new in (("零零", "零"), ("零万", "万"), ("零亿", "亿"), ("亿万", "亿")):
        out = out.replace(old, new)
    out = out.strip("零")
    if out.startswith("一十"):
        out = out[1:]
    return out or CN_DIGITS[0]


def to_chinese(number: str) -> str:
    """A digit run as matched by DIGIT_RUN ("42", "3.14", "2.", "1.2.3")."""
    integer, _, rest = number.partition(".")
    if "." in rest:  # not a decimal number: read digit by digit
        return "点".join("".join(CN_DIGITS[int(c)] for c in part) for part in number.split("."))
    text = integer_to_chinese(integer)
    if rest:
        text += "点" + "".join(CN_DIGITS[int(c)] for c in rest)
    return text


def digits_to_chinese(text: str) -> str:
    return DIGIT_RUN.sub(lambda m: to_chinese(m.group(1)), text)


# fmt: off
EN_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)
EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# fmt: on
EN_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def integer_to_english(n: int) -> str:
    if n < 20:
        return EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return EN_TENS[tens] + ("" if ones == 0 else " " + EN_ONES[ones])
    for value, name in EN_SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            words = integer_to_english(head) + " " + name
            return words + ("" if rest == 0 else " " + integer_to_english(rest))
    raise AssertionError("unreachable")


def to_english(number: str) -> str:
    integer, _, rest = number.partition(".")
    if "." in rest or len(integer) > 12:
        return " ".join(EN_ONES[int(c)] if c != "." else "point" for c in number)
    text = integer_to_english(int(integer))
    if rest:
        text += " point " + " ".join(EN_ONES[int(c)] for c in rest)
    return text


def digits_to_english(text: str) -> str:
    def spell(match: re.Match[str]) -> str:
        run = match.group(1)
        number = run.rstrip(".")
        return " " + to_english(number) + run[len(number) :] + " "

    return DIGIT_RUN.sub(spell, text)
