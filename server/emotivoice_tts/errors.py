"""Errors raised by the inference package.

Request errors subclass `InputError` (a ValueError) so that a caller (the HTTP server) can turn
every bad input into a 400 with the message as is; each message names the offending field and
says what to do instead, and each class names the request field at fault in `param`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class ModelLoadError(RuntimeError):
    """A model directory cannot be loaded: a file is missing, unreadable, or does not fit.

    `missing` and `unexpected` hold the state_dict keys that did not match, so that an operator can
    tell a wrong checkpoint (many keys off) from a version skew (a handful off).
    """

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[str] = (),
    ) -> None:
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        parts = [message]
        for label, keys in (
            ("missing keys", self.missing),
            ("unexpected keys", self.unexpected),
            ("shape/dtype mismatches", self.mismatched),
        ):
            if keys:
                parts.append(f"{label} ({len(keys)}): {_preview(keys)}")
        super().__init__("; ".join(parts))


class InputError(ValueError):
    """A property of the input, not of the model: `param` is the request field at fault (the
    field names of OpenAI's speech request; None: none in particular)."""

    param: str | None = None


class UnknownSpeakerError(InputError):
    """The requested voice is not in the model's speaker list."""

    param = "voice"

    def __init__(self, speaker: str, known: Sequence[str]) -> None:
        self.speaker = speaker
        super().__init__(
            f"voice {speaker!r} is not a speaker of this model; it has {len(known)} speakers, "
            f"e.g. {_preview(known, 5)} (GET /v1/voices lists them all)"
        )


class UnknownTokenError(InputError):
    """The text frontend produced phonemes that the model's token list does not contain."""

    param = "input"

    def __init__(self, tokens: Iterable[str], text: str) -> None:
        self.tokens = sorted(set(tokens))
        shown = text if len(text) <= 60 else text[:57] + "..."
        super().__init__(
            f"input {shown!r} gives phonemes that this model does not know: "
            f"{_preview(self.tokens)}; rephrase the input or use a model whose tokenlist has them"
        )


class EmptyInputError(InputError):
    """The input holds nothing the frontend can pronounce (only symbols, emoji, whitespace)."""

    param = "input"

    def __init__(self, text: str) -> None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        super().__init__(
            f"input {shown!r} contains nothing to speak: give Chinese or English words or digits"
        )


class UnsupportedLanguageError(InputError):
    """The requested language is none the frontend reads."""

    param = "language"

    def __init__(self, language: str | None) -> None:
        self.language = language
        super().__init__(
            f"language {language!r} is not supported; use 'auto' (Chinese/English mixed), "
            "'zh' or 'en'"
        )


def _preview(items: Sequence[str] | Iterable[str], limit: int = 10) -> str:
    items = list(items)
    head = ", ".join(repr(i) for i in items[:limit])
    return head + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")
