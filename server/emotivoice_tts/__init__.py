"""EmotiVoice inference in PyTorch, loading EmotiVoice's released checkpoints (no web code here).

    synth = load_synthesizer(Path("/models/emotivoice"), precision="fp16")
    audio = synth.synthesize("你好, 世界", speaker="8051", prompt="开心")  # float32, 16 kHz

See `layout` for the model directory, `convert` for the fast-start serving files.

The names below are imported on first use (PEP 562), so that `emotivoice_tts.frontend` and
`emotivoice_tts.layout` can be imported without importing torch: the server builds the text
frontend on another thread while torch is still being imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "PRECISIONS": ".config",
    "convert_for_serving": ".convert",
    "EmptyInputError": ".errors",
    "InputError": ".errors",
    "ModelLoadError": ".errors",
    "UnknownSpeakerError": ".errors",
    "UnknownTokenError": ".errors",
    "UnsupportedLanguageError": ".errors",
    "Synthesizer": ".synthesizer",
    "default_device": ".synthesizer",
    "load_synthesizer": ".synthesizer",
}

__all__ = [
    "PRECISIONS",
    "EmptyInputError",
    "InputError",
    "ModelLoadError",
    "Synthesizer",
    "UnknownSpeakerError",
    "UnknownTokenError",
    "UnsupportedLanguageError",
    "convert_for_serving",
    "default_device",
    "load_synthesizer",
]

if TYPE_CHECKING:
    from .config import PRECISIONS
    from .convert import convert_for_serving
    from .errors import (
        EmptyInputError,
        InputError,
        ModelLoadError,
        UnknownSpeakerError,
        UnknownTokenError,
        UnsupportedLanguageError,
    )
    from .synthesizer import Synthesizer, default_device, load_synthesizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
