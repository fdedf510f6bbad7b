"""Reading EmotiVoice's released checkpoints into state_dicts that fit our serving modules.

Both files are plain `torch.save` pickles; they are read with `weights_only=True` so a tampered
file cannot run code. Key handling:
- generator (`g_*`, dict key 'generator'): weight-norm pairs in either spelling are folded into
  plain weights (see vocoder.fold_weight_norm);
- style encoder (`checkpoint_*`, dict key 'model'): the DistributedDataParallel prefix `module.` is
  removed, and `bert.embeddings.position_ids`, a buffer that transformers 4.26 (EmotiVoice's pin)
  saved and newer versions compute, is dropped.
Then every key and shape is checked against the module: anything missing or unexpected is a
ModelLoadError that lists the keys (upstream loads the style encoder with strict=False, so a wrong
file silently keeps random BERT weights; we refuse instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import ModelLoadError
from .vocoder import fold_weight_norm

DDP_PREFIX = "module."
# Saved by transformers < 4.31 as a persistent buffer; computed by newer versions.
LEGACY_BERT_BUFFERS = ("bert.embeddings.position_ids",)


def read_checkpoint(path: Path, entry: str) -> dict[str, torch.Tensor]:
    """`torch.load(path, weights_only=True)[entry]`, with errors that say which file and why."""
    try:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # Files in torch's legacy (pre-1.6) format cannot be memory-mapped.
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"checkpoint {path} does not exist") from exc
    except Exception as exc:  # pickle/zip errors have many types; all mean "not loadable"
        raise ModelLoadError(
            f"checkpoint {path} cannot be read as weights ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(blob, Mapping) or entry not in blob:
        found = sorted(blob) if isinstance(blob, Mapping) else type(blob).__name__
        raise ModelLoadError(f"checkpoint {path} has no {entry!r} entry (found: {found})")
    state = blob[entry]
    if not isinstance(state, Mapping):
        raise ModelLoadError(f"checkpoint {path}: {entry!r} is not a state_dict")
    return dict(state)


def generator_state(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return fold_weight_norm(dict(raw))


def style_state(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {(k[len(DDP_PREFIX) :] if k.startswith(DDP_PREFIX) else k): v for k, v in raw.items()}
    for key in LEGACY_BERT_BUFFERS:
        state.pop(key, None)
    return state


def check_state(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], what: str
) -> None:
    """Raises ModelLoadError unless `got` has exactly the keys and shapes of `expected`."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(got[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(got)
        if tuple(got[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mismatched:
        raise ModelLoadError(
            f"{what} does not fit the model built from this directory's config",
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )


def cast_floats(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors to `dtype` (contiguous, ready to save); integer tensors unchanged."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
