"""Start-up that fails says why on /ready (alive, never ready); prompt embeddings survive a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from tests.server.conftest import START_TIMEOUT_S, write_fetch_marker
from tests.server.server_process import start_server

pytestmark = pytest.mark.slow


def test_a_model_without_completion_marker_is_refused(small_model: Path, tmp_path: Path):
    """The fetch step's marker is missing: the server must not load what may be half-written."""
    unverified = tmp_path / "unverified"
    shutil.copytree(small_model, unverified, symlinks=True)
    proc = start_server(unverified, tmp_path / "server.log", warmup={"phrases": []})
    try:
        body = proc.wait_phase("failed", START_TIMEOUT_S)
        assert body["ready"] is False
        assert "while verifying" in body["error"]
        assert "marker" in body["error"]
        assert requests.get(f"{proc.url}/ready", timeout=5).status_code == 503
        assert requests.get(f"{proc.url}/health", timeout=5).status_code == 200
        refused = requests.post(f"{proc.url}/v1/audio/speech", json={"input": "Hi."}, timeout=5)
        assert refused.status_code == 503
        assert "failed to load" in refused.json()["error"]["message"]
        assert "startup failed phase=verifying" in proc.log()
    finally:
        proc.stop()


def test_a_broken_model_directory_fails_loading_with_the_reason(tmp_path: Path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    proc = start_server(empty, tmp_path / "server.log", "--no-require-marker")
    try:
        body = proc.wait_phase("failed", START_TIMEOUT_S)
        assert "ModelLoadError while loading" in body["error"]
        assert "startup failed phase=loading" in proc.log()
        assert requests.get(f"{proc.url}/health", timeout=5).json()["phase"] == "failed"
    finally:
        proc.stop()


def test_prompt_embeddings_persist_across_restarts(small_model: Path, tmp_path: Path):
    """The second replica restores the prompts the first one saw and runs no BERT for them.

    The model carries the fetch step's completion marker, so this also proves that a verified
    directory loads without --no-require-marker.
    """
    model = tmp_path / "verified"
    shutil.copytree(small_model, model, symlinks=True)
    write_fetch_marker(model)
    cache_file = tmp_path / "cache" / "prompts.pt"
    args = ("--embedding-cache-file", str(cache_file))
    warmup = {"phrases": ["Hello."], "prompts": ["", "Happy"]}
    first = start_server(model, tmp_path / "first.log", *args, warmup=warmup)
    try:
        first.wait_ready(START_TIMEOUT_S)
        user_prompt = {"input": "Hi.", "prompt": "Calm and slow"}
        assert requests.post(f"{first.url}/v1/audio/speech", json=user_prompt, timeout=60).ok
        assert first.metrics()['emotivoice_embedding_cache_misses_total{kind="prompt"}'] == 3
    finally:
        assert first.stop() == 0
    assert cache_file.is_file()

    second = start_server(model, tmp_path / "second.log", *args, warmup=warmup)
    try:
        second.wait_ready(START_TIMEOUT_S)
        assert "prompt_embeddings_restored=3" in second.log()
        metrics = second.metrics()
        assert metrics['emotivoice_embedding_cache_misses_total{kind="prompt"}'] == 0
        user_prompt = {"input": "Hi.", "prompt": "Calm and slow"}
        assert requests.post(f"{second.url}/v1/audio/speech", json=user_prompt, timeout=60).ok
        assert second.metrics()['emotivoice_embedding_cache_misses_total{kind="prompt"}'] == 0
    finally:
        second.stop()
