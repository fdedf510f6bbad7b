"""The acoustic model: phoneme ids + speaker + style/content embeddings -> mel frames.

Same computation as EmotiVoice's `PromptTTS` at inference (see the research notes, section 3.2):
text encoder, conditioning projection, pitch/energy/duration predictors, Gaussian upsampling to
frames, frame decoder, linear projection to 80 mels. Module names equal the released state_dict
keys (`am.*`); the alignment module exists only so that the released checkpoint loads strictly
(it is used in training, never here).

One deliberate addition: `speed` divides the predicted durations before rounding, so speaking rate
is controlled inside the model (upstream time-stretches the waveform afterwards). At speed 1.0 the
result is bit-for-bit upstream's.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import AcousticConfig
from .transformer import ChannelLayerNorm, Encoder

# Gaussian upsampling sharpness, fixed in EmotiVoice.
UPSAMPLING_DELTA = 0.1
# The duration predictor works in log(1 + frames).
DURATION_OFFSET = 1.0


class VariancePredictor(nn.Module):
    """N x [Conv1d -> ReLU -> LayerNorm(channels)] -> Linear(1), padded positions zeroed."""

    def __init__(self, idim: int, n_layers: int, n_chans: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(
                    idim if i == 0 else n_chans,
                    n_chans,
                    kernel_size,
                    padding=(kernel_size - 1) // 2,
                ),
                nn.ReLU(),
                ChannelLayerNorm(n_chans),
            )
            for i in range(n_layers)
        )
        self.linear = nn.Linear(n_chans, 1)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, C), pad (B, T, 1) True at padding -> (B, T)."""
        if pad is not None:
            x = x.masked_fill(pad, 0.0)
        h = x.transpose(1, 2)
        for block in self.conv:
            h = block(h)
        out = self.linear(h.transpose(1, 2))
        if pad is not None:
            out = out.masked_fill(pad, 0.0)
        return out.squeeze(-1)


class AlignmentModule(nn.Module):
    """Training-time text/mel aligner. Present for strict loading of the released checkpoint."""

    def __init__(self, adim: int, odim: int) -> None:
        super().__init__()
        self.t_conv1 = nn.Conv1d(adim, adim, kernel_size=3, padding=1)
        self.t_conv2 = nn.Conv1d(adim, adim, kernel_size=1, padding=0)
        self.f_conv1 = nn.Conv1d(odim, adim, kernel_size=3, padding=1)
        self.f_conv2 = nn.Conv1d(adim, adim, kernel_size=3, padding=1)
        self.f_conv3 = nn.Conv1d(adim, adim, kernel_size=1, padding=0)


def durations_from_log(
    log_durations: torch.Tensor, pad: torch.Tensor | None, speed: float
) -> torch.Tensor:
    """Integer frames per token: max(0, round((exp(l) - 1) / speed)), padding 0, int64.

    Computed in float32 whatever the model precision, so fp16/bf16 round like fp32 does.
    """
    frames = torch.exp(log_durations.float()) - DURATION_OFFSET
    if speed != 1.0:
        frames = frames / speed
    frames = torch.clamp(torch.round(frames), min=0).long()
    if pad is not None:
        frames = frames.masked_fill(pad.squeeze(-1), 0)
    return frames


def gaussian_upsample(
    x: torch.Tensor, durations: torch.Tensor, token_valid: torch.Tensor | None
) -> torch.Tensor:
    """Spreads token vectors x (B, T, C) over frames with Gaussian weights around each token centre.

    Weights are computed in float32 (frame positions in the thousands overflow fp16 when squared)
    and cast to x's dtype for the final product.
    """
    d = durations.float()
    if d.sum() == 0:
        # An untrained or degenerate predictor: give each token one frame, like upstream.
        d[d.sum(dim=1).eq(0)] = 1
    n_frames = int(d.sum(dim=-1).int().max().item())
    t = torch.arange(n_frames, device=x.device, dtype=torch.float32)
    centres = d.cumsum(dim=-1) - d / 2
    energy = -UPSAMPLING_DELTA * (t[None, :, None] - centres[:, None, :]) ** 2
    if token_valid is not None:
        energy = energy.masked_fill(~token_valid[:, None, :], -float("inf"))
    weights = torch.softmax(energy, dim=2)
    return torch.matmul(weights.to(x.dtype), x)


class AcousticModel(nn.Module):
    def __init__(self, cfg: AcousticConfig) -> None:
        super().__init__()
        hidden = cfg.encoder_n_hidden
        self.encoder = Encoder(
            hidden, cfg.encoder_n_heads, cfg.encoder_n_layers, cfg.encoder_kernel_size_conv_mod
        )
        self.decoder = Encoder(
            cfg.decoder_n_hidden,
            cfg.decoder_n_heads,
            cfg.decoder_n_layers,
            cfg.decoder_kernel_size_conv_mod,
        )
        self.duration_predictor = VariancePredictor(
            hidden, cfg.duration_n_layers, cfg.variance_n_hidden, cfg.duration_kernel_size
        )
        self.pitch_predictor = VariancePredictor(
            hidden, cfg.variance_n_layers, cfg.variance_n_hidden, cfg.variance_kernel_size
        )
        k = cfg.variance_embed_kernel_size
        self.pitch_embed = nn.Sequential(nn.Conv1d(1, hidden, k, padding=(k - 1) // 2))
        # Upstream hard-codes the energy predictor's depth and kernel.
        self.energy_predictor = VariancePredictor(hidden, 2, cfg.variance_n_hidden, 3)
        self.energy_embed = nn.Sequential(nn.Conv1d(1, hidden, k, padding=(k - 1) // 2))
        self.alignment_module = AlignmentModule(hidden, cfg.n_mels)
        self.to_mel = nn.Linear(cfg.decoder_n_hidden, cfg.n_mels)
        self.spk_tokenizer = nn.Embedding(cfg.n_speaker, hidden)
        self.src_word_emb = nn.Embedding(cfg.n_vocab, hidden)
        self.embed_projection1 = nn.Linear(hidden * 2 + cfg.bert_embedding * 2, hidden)

    def forward(
        self,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        speakers: torch.Tensor,
        style: torch.Tensor,
        content: torch.Tensor,
        speed: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, T) int64, lengths (B,), speakers (B,), style/content (B, E).

        Returns mels (B, F, n_mels) and integer durations (B, T).
        """
        b, t = tokens.shape
        positions = torch.arange(t, device=tokens.device)
        token_valid = positions[None, :] < lengths[:, None]
        if bool(token_valid.all()):
            token_valid = None  # no padding: skip masking work (the result is the same)
        pad = None if token_valid is None else ~token_valid[..., None]

        x = self.encoder(self.src_word_emb(tokens), token_valid)
        dtype = x.dtype
        cond = torch.cat(
            [
                x,
                self.spk_tokenizer(speakers)[:, None, :].expand(b, t, -1),
                style.to(dtype)[:, None, :].expand(b, t, -1),
                content.to(dtype)[:, None, :].expand(b, t, -1),
            ],
            dim=-1,
        )
        x = self.embed_projection1(cond)

        pitch = self.pitch_predictor(x, pad)
        energy = self.energy_predictor(x, pad)
        durations = durations_from_log(self.duration_predictor(x, pad), pad, speed)
        x = (
            x
            + self.pitch_embed(pitch[:, None, :]).transpose(1, 2)
            + self.energy_embed(energy[:, None, :]).transpose(1, 2)
        )
        frames = gaussian_upsample(x, durations, token_valid)
        return self.to_mel(self.decoder(frames)), durations
