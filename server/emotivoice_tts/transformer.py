"""The Transformer block stack that EmotiVoice uses for both its text encoder and frame decoder.

An espnet-style pre-norm encoder: learned-scale sinusoidal positions (no sqrt(d) input scaling),
multi-head self-attention, and a feed-forward made of two time convolutions with exact GELU.
Parameter names follow the released checkpoints (`embed.0.alpha`, `encoders.N.self_attn.linear_q`,
`feed_forward.w_1`, `norm1`, `after_norm`), so a state_dict loads without renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# EmotiVoice's LayerNorms all use this epsilon (not PyTorch's default 1e-5).
LAYER_NORM_EPS = 1e-12


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a (B, C, T) tensor, as the variance predictors use."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, -1)).transpose(1, -1)


class ScaledPositionalEncoding(nn.Module):
    """x + alpha * PE[:T]; the sinusoid table is computed, never stored in the state_dict."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self._table: torch.Tensor | None = None

    def table(self, length: int, like: torch.Tensor) -> torch.Tensor:
        """The first `length` rows, built in float32 (like upstream) and cached per device/dtype."""
        cached = self._table
        if (
            cached is None
            or cached.size(0) < length
            or cached.device != like.device
            or cached.dtype != like.dtype
        ):
            rows = max(length, 0 if cached is None else cached.size(0), 1024)
            position = torch.arange(0, rows, dtype=torch.float32).unsqueeze(1)
            div_term = torch.exp(
                torch.arange(0, self.d_model, 2, dtype=torch.float32)
                * -(math.log(10000.0) / self.d_model)
            )
            pe = torch.zeros(rows, self.d_model)
            pe[:, 0::2] = torch.sin(position * div_term)
            pe[:, 1::2] = torch.cos(position * div_term)
            self._table = cached = pe.to(device=like.device, dtype=like.dtype)
        return cached[:length]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.table(x.size(1), x)


class MultiHeadedAttention(nn.Module):
    def __init__(self, n_head: int, n_feat: int) -> None:
        super().__init__()
        if n_feat % n_head:
            raise ValueError(f"hidden size {n_feat} is not divisible by {n_head} heads")
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None) -> torch.Tensor:
        """Self-attention over x (B, T, C); key_valid (B, T) is True for real (unpadded) keys."""
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        mask = None if key_valid is None else key_valid[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.linear_out(out.transpose(1, 2).reshape(b, t, self.h * self.d_k))


class ConvFeedForward(nn.Module):
    """Two time convolutions with exact GELU between them (espnet's MultiLayeredConv1d)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.w_1 = nn.Conv1d(channels, hidden, kernel_size, padding=pad)
        self.w_2 = nn.Conv1d(hidden, channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.gelu(self.w_1(x.transpose(1, 2)))).transpose(1, 2)


class EncoderLayer(nn.Module):
    def __init__(self, size: int, heads: int, kernel_size: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(heads, size)
        self.feed_forward = ConvFeedForward(size, size * 4, kernel_size)
        self.norm1 = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(size, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), key_valid)
        return x + self.feed_forward(self.norm2(x))


class Encoder(nn.Module):
    """Positions, N pre-norm layers, final LayerNorm. Dropout is omitted: inference only."""

    def __init__(self, size: int, heads: int, layers: int, kernel_size: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(ScaledPositionalEncoding(size))
        self.encoders = nn.ModuleList(EncoderLayer(size, heads, kernel_size) for _ in range(layers))
        self.after_norm = nn.LayerNorm(size, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(x)
        for layer in self.encoders:
            x = layer(x, key_valid)
        return self.after_norm(x)
