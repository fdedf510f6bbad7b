"""The pieces fit: the init container's arguments as the operator renders them, run against a
real S3 server, download the released model, convert it for the rendered precision through the
after-verify hook, and leave a directory the model loads from with its serving files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from emotivoice_fetch.marker import verify_complete
from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.render.deployment import fetch_args
from emotivoice_server.lifecycle import load_model, verify_marker
from emotivoice_server.settings import resolve
from emotivoice_server.warmup import WarmupSpec
from emotivoice_tts import load_synthesizer
from emotivoice_tts.convert import serving_path
from emotivoice_tts.layout import GENERATOR_DIR, ModelLayout
from emotivoice_tts.testmodel import write_model
from tests.fetch.conftest import run_fetch, upload

pytestmark = pytest.mark.slow


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _without(args: list[str], *flags: str) -> list[str]:
    """``args`` less each of ``flags`` and its value."""
    out = list(args)
    for flag in flags:
        at = out.index(flag)
        del out[at : at + 2]
    return out


def test_rendered_fetch_step_yields_a_loadable_converted_model(gw, tmp_path: Path) -> None:
    released = write_model(tmp_path / "released", "small", seed=3)
    files = {p.relative_to(released).as_posix(): p for p in released.rglob("*") if p.is_file()}
    model = upload(gw, files, prefix="emotivoice/v1")
    spec = parse_spec({"model": {"source": {"uri": f"s3://{model.bucket}/emotivoice/v1"}}})
    args = fetch_args(spec)
    assert _flag(args, "--after-verify") == "emotivoice_tts.convert:convert_fp32"
    dest = tmp_path / "volume" / "model"
    # Every rendered flag, with the two paths of a pod moved into the test's directory (the
    # endpoint, which this spec leaves to AWS, is the test server's: run_fetch adds it).
    report = tmp_path / "termination-log"
    rendered = _without(args, "--source", "--dest")
    rendered[rendered.index("--report") + 1] = str(report)
    result = run_fetch(gw, _flag(args, "--source"), dest, *rendered)
    assert result.rc == 0, result.out
    assert json.loads(report.read_text())["action"] == "downloaded"

    complete = verify_complete(dest)
    assert set(files) <= set(complete.files)
    # The converter's outputs are recorded in the marker: a changed one is detected later.
    converted = [
        serving_path(dest / rel, "fp32")
        for rel in files
        if serving_path(dest / rel, "fp32").exists()
    ]
    assert converted, "the after-verify hook wrote no serving file"
    assert {p.relative_to(dest).as_posix() for p in converted} <= set(complete.artifacts)

    synth = load_synthesizer(dest, precision="fp32", device="cpu")
    audio = synth.synthesize("Hello.", speaker=synth.speakers[0])
    assert audio.ndim == 1 and audio.size > 0


def test_only_the_files_the_marker_records_are_loaded(gw, tmp_path: Path) -> None:
    """Issue 16: a checkpoint planted beside the fetched one (it sorts last, the name upstream
    picks) is not verified, so the server neither converts nor loads it."""
    released = write_model(tmp_path / "released", "small", seed=3)
    files = {p.relative_to(released).as_posix(): p for p in released.rglob("*") if p.is_file()}
    model = upload(gw, files, prefix="emotivoice/v1")
    dest = tmp_path / "volume" / "model"
    hook = "emotivoice_tts.convert:convert_fp32"
    result = run_fetch(gw, model.uri, dest, "--after-verify", hook)
    assert result.rc == 0, result.out

    (fetched,) = (dest / GENERATOR_DIR).glob("g_????????")
    planted = dest / GENERATOR_DIR / "g_99999999"
    state = torch.load(fetched, map_location="cpu", weights_only=True)
    state["generator"] = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in state["generator"].items()
    }
    torch.save(state, planted)
    verify_complete(dest)  # the marker's own files are all intact: the plant is not among them
    assert ModelLayout.discover(dest).generator_ckpt == planted  # what a bare glob would load

    settings = resolve(
        model_dir=dest, env={}, warmup=WarmupSpec(), process_start=0.0, precision="fp32",
        device="cpu", persist_embeddings=False,
    )  # fmt: skip
    verified = verify_marker(settings)
    assert planted.relative_to(dest).as_posix() not in verified
    synth = load_model(replace(settings, verified_files=verified), None)
    assert synth.spec.layout.generator_ckpt == fetched
    audio = synth.synthesize("Hello.", speaker=synth.speakers[0])
    assert audio.size > 0 and np.isfinite(audio).all()
    assert not serving_path(planted, "fp32").exists()  # not converted either
