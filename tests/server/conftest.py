"""Fixtures for the server tests: the generated small model and a running server on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.server_process import ServerProcess, start_server

# Start-up on two shared cores: importing torch alone takes a few seconds.
START_TIMEOUT_S = 120
WARMUP = {"phrases": ["Hello.", "Good morning. 今天天气真好。"], "prompts": ["", "Happy"]}


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly generated small model (the model package's own generator, about a second),
    private to this session: the server writes its converted serving files into it."""
    from emotivoice_tts.testmodel import write_model

    return write_model(tmp_path_factory.mktemp("model") / "small", "small", seed=0)


@pytest.fixture(scope="module")
def server(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server on the small model, started once per module and always stopped."""
    logs = tmp_path_factory.mktemp("server-logs")
    proc = start_server(
        small_model,
        logs / "server.log",
        "--no-require-marker",
        "--embedding-cache-file",
        str(logs / "prompt-embeddings.pt"),
        warmup=WARMUP,
    )
    try:
        proc.wait_ready(START_TIMEOUT_S)
        yield proc
    finally:
        proc.stop()


def write_fetch_marker(model_dir: Path) -> None:
    """Mark `model_dir` complete the way the fetch step does (its own marker code, real hashes)."""
    import hashlib

    from emotivoice_fetch.marker import CompleteModel, record_for, write_marker

    files = {}
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        files[path.relative_to(model_dir).as_posix()] = record_for(path, digest)
    write_marker(CompleteModel(dest=model_dir, source="s3://test/small", files=files))
