"""The hyper-parameters of a model, read from EmotiVoice's `config/joint/config.yaml`.

Only the keys the inference path reads are kept (the yaml also holds training and unused settings).
`n_vocab` and `n_speaker` are not in the yaml: like upstream, they come from the line counts of the
token and speaker lists. The BERT shape comes from the BERT directory's `config.json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import ModelLoadError

SAMPLE_RATE_DEFAULT = 16_000


@dataclass(frozen=True)
class AcousticConfig:
    """The acoustic model (text encoder, variance adaptor, frame decoder)."""

    n_vocab: int
    n_speaker: int
    n_mels: int
    bert_embedding: int
    encoder_n_layers: int
    encoder_n_heads: int
    encoder_n_hidden: int
    encoder_kernel_size_conv_mod: int
    decoder_n_layers: int
    decoder_n_heads: int
    decoder_n_hidden: int
    decoder_kernel_size_conv_mod: int
    variance_n_hidden: int
    variance_n_layers: int
    variance_kernel_size: int
    variance_embed_kernel_size: int
    duration_n_layers: int
    duration_kernel_size: int


@dataclass(frozen=True)
class VocoderConfig:
    """The HiFi-GAN generator."""

    initial_channel: int
    upsample_initial_channel: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]

    @property
    def hop_length(self) -> int:
        """Samples per mel frame: the product of the upsampling rates."""
        return math.prod(self.upsample_rates)


@dataclass(frozen=True)
class ModelConfig:
    acoustic: AcousticConfig
    vocoder: VocoderConfig
    sample_rate: int


def parse_config(raw: dict[str, Any], *, n_vocab: int, n_speaker: int) -> ModelConfig:
    """Builds the typed config from the parsed yaml; a missing key names itself."""
    model = raw.get("model")
    if not isinstance(model, dict):
        raise ModelLoadError("config.yaml has no 'model' section")
    values = dict(model)
    values.update(n_vocab=n_vocab, n_speaker=n_speaker, n_mels=raw.get("n_mels", 80))
    acoustic = AcousticConfig(**{f.name: _need(values, f.name) for f in fields(AcousticConfig)})
    if values.get("resblock", "1") != "1":
        raise ModelLoadError(
            f"config.yaml model.resblock is {values['resblock']!r}; only '1' (the released "
            "EmotiVoice vocoder) is implemented"
        )
    vocoder = VocoderConfig(
        initial_channel=_need(values, "initial_channel"),
        upsample_initial_channel=_need(values, "upsample_initial_channel"),
        upsample_rates=tuple(_need(values, "upsample_rates")),
        upsample_kernel_sizes=tuple(_need(values, "upsample_kernel_sizes")),
        resblock="1",
        resblock_kernel_sizes=tuple(_need(values, "resblock_kernel_sizes")),
        resblock_dilation_sizes=tuple(tuple(d) for d in _need(values, "resblock_dilation_sizes")),
    )
    if vocoder.initial_channel != acoustic.n_mels:
        raise ModelLoadError(
            f"config.yaml: model.initial_channel ({vocoder.initial_channel}) must equal n_mels "
            f"({acoustic.n_mels}); the vocoder reads the decoder's mel output"
        )
    return ModelConfig(acoustic, vocoder, int(raw.get("sr", SAMPLE_RATE_DEFAULT)))


def load_config(path: Path, *, n_vocab: int, n_speaker: int) -> ModelConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"model config {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"model config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"model config {path} is not a mapping")
    try:
        return parse_config(raw, n_vocab=n_vocab, n_speaker=n_speaker)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc


def _need(values: dict[str, Any], key: str) -> Any:
    if key not in values:
        raise ModelLoadError(f"config.yaml model section lacks {key!r}")
    return values[key]


# Serving precisions, by the names the custom resource and the server use.
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def precision_dtype(precision: str) -> torch.dtype:
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(
            f"precision {precision!r} is not supported; use one of {', '.join(PRECISIONS)}"
        ) from None
