"""HiFi-GAN generator (V1-style, ResBlock1): mel frames (B, 80, F) -> waveform (B, 1, hop * F).

Released checkpoints store every convolution weight-normalised (a magnitude g and a direction v).
`weight_norm=True` builds the convolutions with PyTorch's weight-norm parametrization, which gives
exactly the released key names; serving builds them plain (`weight_norm=False`) and loads weights
folded once by `fold_weight_norm` (w = g * v / ||v||), so no forward pass recomputes the norm.

Serving also runs each upsampling layer (a transposed convolution) as its polyphase equivalent, a
plain convolution with `rate` times the output channels whose outputs are interleaved
(`PolyphaseUpsample`): the same weights and the same result, but oneDNN's transposed convolution
pays tens of milliseconds of set-up for every new input length (every request has a new length)
and runs slower than the plain convolution it is rewritten into.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from .config import VocoderConfig

LRELU_SLOPE = 0.1
# The last activation uses PyTorch's default slope, not LRELU_SLOPE (as in the released model).
POST_LRELU_SLOPE = 0.01

# Weight-norm key suffixes: torch.nn.utils.weight_norm (how the released checkpoint was written)
# and the newer parametrization API (how a module built here names them).
LEGACY_G, LEGACY_V = ".weight_g", ".weight_v"
PARAM_G, PARAM_V = ".parametrizations.weight.original0", ".parametrizations.weight.original1"


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    def __init__(
        self, channels: int, kernel_size: int, dilations: tuple[int, ...], wn: bool
    ) -> None:
        super().__init__()
        norm = _weight_norm if wn else _identity
        self.convs1 = nn.ModuleList(
            norm(
                nn.Conv1d(
                    channels, channels, kernel_size, dilation=d, padding=_padding(kernel_size, d)
                )
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            norm(nn.Conv1d(channels, channels, kernel_size, padding=_padding(kernel_size)))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            t = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = x + t
        return x


class PolyphaseUpsample(nn.Module):
    """A ConvTranspose1d(c_in, c_out, kernel, rate, padding) computed as a Conv1d + interleave.

    Output sample t = q * rate + p takes input i with kernel tap k = t + padding - i * rate, so
    phase p is an ordinary convolution over the input with taps k = j * rate + p + padding for
    the offsets j = q - i that land inside the kernel. Stacking the phases as output channels
    gives one convolution; interleaving its channels gives the transposed convolution's output.
    Parameters keep ConvTranspose1d's names and shapes, so checkpoints load unchanged.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, rate: int, padding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_in, c_out, kernel))
        self.bias = nn.Parameter(torch.empty(c_out))
        self.rate, self.padding = rate, padding
        # Input offsets j = q - i (output frame q, input frame i) that some phase's tap uses.
        self._lo = min(-((p + padding) // rate) for p in range(rate))
        self._hi = max((kernel - 1 - p - padding) // rate for p in range(rate))
        # Built from the weights on first use; keyed by the parameters' storage, version
        # counter, dtype and device, so loading, changing, casting or moving them rebuilds it.
        self._phases: tuple[torch.Tensor, torch.Tensor] | None = None
        self._phases_of: tuple[object, ...] | None = None

    def _key(self) -> tuple[object, ...]:
        w, b = self.weight, self.bias
        return (w.data_ptr(), _version(w), b.data_ptr(), _version(b), w.dtype, w.device)

    @staticmethod
    def applies(kernel: int, rate: int, padding: int) -> bool:
        """Output length = rate x input length, the HiFi-GAN case (otherwise ConvTranspose1d)."""
        return kernel - 2 * padding == rate and 0 <= padding < kernel

    def phase_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(rate * c_out, c_in, taps) weights and (rate * c_out,) bias, built once."""
        key = self._key()
        if self._phases is not None and self._phases_of == key:
            return self._phases
        w = self.weight.detach()
        c_in, c_out, kernel = w.shape
        lo, hi = self._lo, self._hi
        taps = hi - lo + 1
        phases = torch.zeros(self.rate, c_out, c_in, taps, dtype=w.dtype, device=w.device)
        for p in range(self.rate):
            for j in range(lo, hi + 1):
                k = j * self.rate + p + self.padding
                if 0 <= k < kernel:
                    phases[p, :, :, hi - j] = w[:, :, k].T
        bias = self.bias.detach().repeat(self.rate)
        self._phases = (phases.reshape(self.rate * c_out, c_in, taps), bias)
        self._phases_of = key
        return self._phases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.phase_weights()
        z = F.conv1d(F.pad(x, (self._hi, -self._lo)), weight, bias)
        batch, _, frames = z.shape
        c_out = self.weight.shape[1]
        return z.view(batch, self.rate, c_out, frames).permute(0, 2, 3, 1).reshape(batch, c_out, -1)


class HifiganGenerator(nn.Module):
    def __init__(self, cfg: VocoderConfig, *, weight_norm: bool = False) -> None:
        super().__init__()
        norm = _weight_norm if weight_norm else _identity
        ch = cfg.upsample_initial_channel
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.conv_pre = norm(nn.Conv1d(cfg.initial_channel, ch, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(
            zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)
        ):
            c_in, c_out = ch // (2**i), ch // (2 ** (i + 1))
            padding = (kernel - rate) // 2
            if not weight_norm and PolyphaseUpsample.applies(kernel, rate, padding):
                self.ups.append(PolyphaseUpsample(c_in, c_out, kernel, rate, padding))
            else:
                self.ups.append(
                    norm(nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=padding))
                )
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock1(c_out, k, d, weight_norm))
        self.conv_post = norm(nn.Conv1d(c_out, 1, 7, padding=3))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mels)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            acc = blocks[0](x)
            for block in blocks[1:]:
                acc = acc + block(x)
            x = acc / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x, POST_LRELU_SLOPE)))


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replaces every (g, v) pair, in either spelling, by the effective `weight` (float32 math).

    The norm runs over all axes but 0, which is what weight_norm(dim=0) does for Conv1d (per output
    channel) and for ConvTranspose1d (per input channel). The result is cast back to v's dtype.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for g_suffix, v_suffix in ((LEGACY_G, LEGACY_V), (PARAM_G, PARAM_V)):
            if key.endswith(v_suffix):
                base = key[: -len(v_suffix)]
                g = state.get(base + g_suffix)
                if g is None:
                    out[key] = value  # unpaired: left for the strict key check to report
                    break
                v32 = value.float()
                norm = v32.pow(2).sum(dim=tuple(range(1, v32.dim())), keepdim=True).sqrt()
                out[base + ".weight"] = (v32 * (g.float() / norm)).to(value.dtype)
                break
            if key.endswith(g_suffix) and (key[: -len(g_suffix)] + v_suffix) in state:
                break  # consumed with its v
        else:
            out[key] = value
    return out


def _version(tensor: torch.Tensor) -> int:
    """In-place changes bump a tensor's version; tensors made in inference mode have none."""
    return -1 if tensor.is_inference() else tensor._version


def _identity(module: nn.Module) -> nn.Module:
    return module
