"""An --after-verify hook whose module records each import (in $EMOTIVOICE_TEST_IMPORT_LOG):
the test that a warm start does not import the hook (the real one imports torch, ~1 s)."""

from __future__ import annotations

import os
from pathlib import Path

_log = os.environ.get("EMOTIVOICE_TEST_IMPORT_LOG")
if _log:
    with open(_log, "a") as f:
        f.write("imported\n")


def touch(dest: Path, files: dict[str, str]) -> list[str]:
    (dest / "touched").write_text("yes\n")
    return ["touched"]
