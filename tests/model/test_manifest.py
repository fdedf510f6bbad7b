"""With the released config, our modules' state_dict keys and shapes equal the upstream manifest
(../shared/research/emotivoice-state-dict.tsv, generated from EmotiVoice's own modules).

Modules are built on the meta device: shapes only, no memory, so the full size costs nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emotivoice_tts.bert import BertConfig
from emotivoice_tts.config import parse_config
from emotivoice_tts.jets import JetsModel
from emotivoice_tts.style import StyleEncoder
from emotivoice_tts.testmodel import FULL_BERT, FULL_MODEL, FULL_TOP, LABELS

MANIFEST = Path(__file__).resolve().parents[3] / "shared/research/emotivoice-state-dict.tsv"


def read_manifest() -> dict[str, dict[str, tuple[int, ...]]]:
    """Sections ('JETSGenerator', 'StyleEncoder') of key -> shape."""
    if not MANIFEST.is_file():
        pytest.skip(f"{MANIFEST} not present (CI checks it out beside the repository)")
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current: dict[str, tuple[int, ...]] = {}
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("# === "):
            current = sections.setdefault(line.split()[2], {})
        elif line and not line.startswith("#") and not line.startswith("key\t"):
            key, shape, _dtype = line.split("\t")
            current[key] = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
    return sections


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_generator_matches_manifest() -> None:
    manifest = read_manifest()["JETSGenerator"]
    config = parse_config({**FULL_TOP, "model": FULL_MODEL}, n_vocab=502, n_speaker=2014)
    with torch.device("meta"):
        model = JetsModel(config, weight_norm=True)
    assert shapes(model) == manifest
    assert sum(v.numel() for v in model.state_dict().values()) == 53_277_015


def test_style_encoder_matches_manifest() -> None:
    manifest = read_manifest()["StyleEncoder"]
    with torch.device("meta"):
        model = StyleEncoder(BertConfig(**FULL_BERT), {k: len(v) for k, v in LABELS.items()})
    assert shapes(model) == manifest
