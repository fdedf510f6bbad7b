"""The serving vocoder's polyphase upsampling equals the transposed convolution it replaces."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emotivoice_tts import Synthesizer
from emotivoice_tts.vocoder import HifiganGenerator, PolyphaseUpsample


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "rate", "frames"),
    [
        (16, 8, 16, 8, 37),  # HiFi-GAN's first two stages (kernel 2 x rate)
        (8, 4, 4, 2, 101),  # its last two
        (6, 5, 11, 3, 12),  # odd kernel and rate: taps on both sides
        (4, 4, 2, 2, 1),  # kernel == rate, a single input frame
    ],
)
@torch.inference_mode()
def test_polyphase_equals_conv_transpose(
    c_in: int, c_out: int, kernel: int, rate: int, frames: int
) -> None:
    padding = (kernel - rate) // 2
    assert PolyphaseUpsample.applies(kernel, rate, padding)
    torch.manual_seed(frames)
    reference = nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=padding)
    ours = PolyphaseUpsample(c_in, c_out, kernel, rate, padding)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, c_in, frames)
    expected = reference(x)
    got = ours(x)
    assert got.shape == expected.shape == (2, c_out, frames * rate)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_new_weights_rebuild_the_phases() -> None:
    """A cached phase matrix must never outlive the weights it was built from: new tensors
    (load with assign), weights changed in place, and a cast each rebuild it."""
    ours = PolyphaseUpsample(4, 4, 4, 2, 1)
    reference = nn.ConvTranspose1d(4, 4, 4, 2, padding=1)
    x = torch.randn(1, 4, 9)
    ours.load_state_dict(reference.state_dict(), assign=True)  # shares the tensors
    for seed in (1, 2):
        torch.manual_seed(seed)
        for param in reference.parameters():
            param.normal_()  # in place: ours sees the same storage change
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    before = ours(x)
    ours.load_state_dict({k: v * 2 for k, v in reference.state_dict().items()})  # copies in
    torch.testing.assert_close(ours(x), 2 * before, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        ours.double()(x.double()), reference.double()(x.double()), rtol=1e-9, atol=1e-9
    )


def test_other_shapes_keep_the_transposed_convolution() -> None:
    assert not PolyphaseUpsample.applies(kernel=5, rate=2, padding=2)  # output 2n - 1, not 2n


@torch.inference_mode()
def test_serving_vocoder_matches_the_weight_norm_build(synth: Synthesizer) -> None:
    """The whole HiFi-GAN as served (folded weights, polyphase) against the released build."""
    serving = synth.generator.generator
    assert any(isinstance(m, PolyphaseUpsample) for m in serving.modules())
    released = HifiganGenerator(synth.spec.config.vocoder, weight_norm=False)
    for i in range(len(released.ups)):
        c_in, c_out, kernel = serving.ups[i].weight.shape
        rate = serving.ups[i].rate
        released.ups[i] = nn.ConvTranspose1d(c_in, c_out, kernel, rate, serving.ups[i].padding)
    released.load_state_dict(serving.state_dict())
    mels = torch.randn(1, synth.spec.config.vocoder.initial_channel, 23)
    torch.testing.assert_close(serving(mels), released(mels), rtol=1e-4, atol=1e-5)
