"""The joint model of a `g_*` checkpoint: acoustic model (`am.*`) + HiFi-GAN (`generator.*`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .acoustic import AcousticModel
from .config import ModelConfig
from .vocoder import HifiganGenerator


@dataclass
class JetsOutput:
    wav: torch.Tensor  # (B, 1, hop * frames), in (-1, 1)
    durations: torch.Tensor  # (B, T) int64 frames per token
    mels: torch.Tensor  # (B, frames, n_mels)


class JetsModel(nn.Module):
    def __init__(self, cfg: ModelConfig, *, weight_norm: bool = False) -> None:
        super().__init__()
        self.am = AcousticModel(cfg.acoustic)
        self.generator = HifiganGenerator(cfg.vocoder, weight_norm=weight_norm)

    def forward(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        speakers: torch.Tensor,
        style: torch.Tensor,
        content: torch.Tensor,
        speed: float = 1.0,
    ) -> JetsOutput:
        mels, durations = self.am(tokens, lengths, speakers, style, content, speed)
        wav = self.generator(mels.transpose(1, 2))
        return JetsOutput(wav=wav, durations=durations, mels=mels)
