"""The package's import surface: the frontend and layout import without torch, and every
public name resolves (the package namespace imports on first use)."""

from __future__ import annotations

import subprocess
import sys

import emotivoice_tts


def test_frontend_and_layout_import_without_torch() -> None:
    """The server builds the frontend while torch is still being imported on another thread;
    if the frontend pulled torch in, the two would serialize on the import lock."""
    code = (
        "import sys, emotivoice_tts.frontend, emotivoice_tts.layout; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves() -> None:
    for name in emotivoice_tts.__all__:
        assert getattr(emotivoice_tts, name) is not None
    assert set(emotivoice_tts.__all__) == set(emotivoice_tts._EXPORTS)
