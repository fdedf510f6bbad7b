"""Models written by one uid are readable by another: the fetch step (root, or any uid) writes
and converts, the server (uid 1000) reads. Both bugs this guards against were found when the
server image first ran in a real pod."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotivoice_tts import convert_for_serving
from emotivoice_tts.testmodel import write_model

SERVER_UID = 1000
# The reader runs as uid 1000, which cannot enter /root (where the venv's interpreter may live);
# it needs only the standard library.
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to read as another uid"),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"no {SYSTEM_PYTHON}"),
]

# Reads every file below argv[1] as the uid it runs as; prints what it could not read.
READ_ALL = """
import os, sys
bad = []
for root, dirs, files in os.walk(sys.argv[1], onerror=lambda e: bad.append(e.filename)):
    for name in files:
        try:
            with open(os.path.join(root, name), "rb") as fh:
                fh.read(1)
        except OSError as err:
            bad.append(f"{err.filename}: {err.strerror}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every uid can enter (pytest's tmp_path lives under a 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="evs-modes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def unreadable_by_server(path: Path) -> str:
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", READ_ALL, str(path)],
        user=SERVER_UID,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )
    return result.stdout.strip() + result.stderr.strip()


def test_a_generated_model_is_readable_by_the_servers_uid(shared_dir: Path) -> None:
    model = write_model(shared_dir / "small", "small", seed=0)
    assert model.stat().st_mode & 0o777 == 0o755
    assert unreadable_by_server(model) == ""


def test_serving_files_converted_by_root_are_readable_by_the_servers_uid(
    shared_dir: Path,
) -> None:
    model = write_model(shared_dir / "small", "small", seed=0)
    written = convert_for_serving(model, precisions=["fp32", "fp16"])
    assert written
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert unreadable_by_server(model) == ""
