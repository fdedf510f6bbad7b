"""Everything about a model directory except its weights, and the weight-less module skeletons.

Modules are built on PyTorch's meta device: no memory is allocated and no random initialisation
runs (half a second for the generator, over a second for BERT), because every weight is replaced
by the loaded one anyway (`load_state_dict(assign=True)`). The initialisers are switched off too:
on the meta device `normal_` runs through PyTorch's Python reference implementations, whose first
use imports compiler modules for 1.5 s of start-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .bert import BertConfig
from .config import ModelConfig, load_config
from .errors import ModelLoadError
from .jets import JetsModel
from .layout import ModelLayout, read_lines
from .style import HEADS, StyleEncoder, read_bert_config


@dataclass(frozen=True)
class ModelSpec:
    layout: ModelLayout
    config: ModelConfig
    bert_config: BertConfig
    tokens: list[str]
    speakers: list[str]
    head_sizes: dict[str, int]

    @classmethod
    def read(cls, layout: ModelLayout) -> ModelSpec:
        tokens = read_lines(layout.tokenlist)
        speakers = read_lines(layout.speakers)
        if not tokens or not speakers:
            raise ModelLoadError(
                f"{layout.tokenlist if not tokens else layout.speakers} is empty; "
                "the model needs its token and speaker lists"
            )
        config = load_config(layout.config, n_vocab=len(tokens), n_speaker=len(speakers))
        head_sizes = {name: len(read_lines(layout.label_files[name])) for name in HEADS}
        return cls(layout, config, read_bert_config(layout.bert_dir), tokens, speakers, head_sizes)

    def empty_generator(self, *, weight_norm: bool = False) -> JetsModel:
        with skeleton():
            return JetsModel(self.config, weight_norm=weight_norm)

    def empty_style(self) -> StyleEncoder:
        with skeleton():
            return StyleEncoder(self.bert_config, self.head_sizes)


# The in-place initialisers of torch.nn.init that module constructors call.
_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
)


@contextlib.contextmanager
def skeleton() -> Iterator[None]:
    """Modules built inside have meta tensors and run no initialiser (all are overwritten).

    The initialisers are swapped in `torch.nn.init` itself, for the whole process: a module
    built on another thread meanwhile would skip its initialisation too. Loading builds its
    modules on one thread (the server's model thread), and nothing else builds modules then.
    """
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}

    def keep(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return tensor

    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, keep)
        with torch.device("meta"):
            yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def materialize(module: nn.Module, state: dict[str, torch.Tensor], device: str) -> None:
    """Puts the loaded tensors into a meta-built module (strict), on `device`, for inference."""
    state = {k: v.to(device) for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=True)
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise ModelLoadError("tensors left without values after loading", missing=leftovers)
    module.eval()
    module.requires_grad_(False)
