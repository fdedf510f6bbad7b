"""The serving format: released weights converted once into what loads fastest.

A released checkpoint is a pickle in float32 with weight-norm pairs and a `module.` prefix, so each
start would unpickle it, fold the norms and cast. Instead each source file gets a sibling per
precision, written once (by the fetch step's after-verify hook, or by the first server start)::

    outputs/prompt_tts_open_source_joint/ckpt/g_00140000.serving-fp16.safetensors
    outputs/style_encoder/ckpt/checkpoint_163431.serving-fp16.safetensors

holding exactly the serving modules' state_dicts in the target dtype (weight norm folded in
float32 first), which safetensors memory-maps and copies straight to the target device.
The upstream globs (`g_` + 8 characters, `checkpoint_` + 6) never match these names.

Each file's metadata records its source: SHA-256 (from the fetch step's verified manifest when
given, else computed during conversion), size and mtime. A start compares size and mtime only (a
stat, not a second read of the source); any difference, or a different format version, makes the
file stale and it is rebuilt. Writes go to a temporary name and are renamed into place, so a crash
never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .checkpoints import cast_floats, check_state, generator_state, read_checkpoint, style_state
from .config import PRECISIONS, precision_dtype
from .errors import ModelLoadError
from .layout import GENERATOR_DIR, GENERATOR_GLOB, STYLE_DIR, STYLE_GLOB, ModelLayout
from .spec import ModelSpec

log = logging.getLogger(__name__)

FORMAT = "emotivoice-serving/1"
PAGE_SIZE = 4096
# Readable by every uid: the fetch step (any uid) converts, the server (uid 1000) reads.
SERVING_FILE_MODE = 0o644
CHECKPOINT_ENTRY = {"generator": "generator", "style": "model"}


@dataclass(frozen=True)
class SourceId:
    """What identifies the released file a serving file was made from."""

    sha256: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path, sha256: str | None = None) -> SourceId:
        st = path.stat()
        return cls(sha256 or _sha256(path), st.st_size, st.st_mtime_ns)

    def metadata(self, precision: str) -> dict[str, str]:
        return {
            "format": FORMAT,
            "precision": precision,
            "source_sha256": self.sha256,
            "source_size": str(self.size),
            "source_mtime_ns": str(self.mtime_ns),
        }


def serving_path(source: Path, precision: str) -> Path:
    return source.with_name(f"{source.name}.serving-{precision}.safetensors")


def is_current(source: Path, precision: str) -> bool:
    """True when the serving file exists, is complete, and was made from this very source."""
    path = serving_path(source, precision)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        st = source.stat()
    except Exception:  # missing, truncated or foreign file (safetensors raises its own types)
        return False
    return (
        meta.get("format") == FORMAT
        and meta.get("precision") == precision
        and meta.get("source_size") == str(st.st_size)
        and meta.get("source_mtime_ns") == str(st.st_mtime_ns)
    )


def released_state(spec: ModelSpec, role: str) -> dict[str, torch.Tensor]:
    """A released checkpoint read, normalised to our keys and checked against the model (fp32)."""
    layout = spec.layout
    if role == "generator":
        raw = read_checkpoint(layout.generator_ckpt, CHECKPOINT_ENTRY[role])
        state, expected = generator_state(raw), spec.empty_generator().state_dict()
        what = f"generator checkpoint {layout.generator_ckpt}"
    else:
        raw = read_checkpoint(layout.style_ckpt, CHECKPOINT_ENTRY[role])
        state, expected = style_state(raw), spec.empty_style().state_dict()
        what = f"style encoder checkpoint {layout.style_ckpt}"
    check_state(expected, state, what)
    return state


def write_serving(
    source: Path, precision: str, state: Mapping[str, torch.Tensor], source_id: SourceId
) -> Path:
    """Writes one serving file atomically (temp file in the same folder, fsync, rename)."""
    target = serving_path(source, precision)
    tensors = cast_floats(state, precision_dtype(precision))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=source_id.metadata(precision))
        # After writing: save_file replaces the file with a new one at 0600, which would hide it
        # from a server running as another uid than the fetch step that converted it.
        os.chmod(tmp, SERVING_FILE_MODE)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_serving(source: Path, precision: str, device: str) -> dict[str, torch.Tensor]:
    """The serving file's tensors on `device`, every byte read now.

    On CPU safetensors memory-maps the file, and pages would only be read when the first
    inference touches them: the load would look instant and the first request would pay for the
    disk. Touching one byte per page here makes the load honest (and the mapping stays shared
    with the page cache, so replicas on one node do not hold private copies).
    """
    state = load_file(str(serving_path(source, precision)), device=device)
    if torch.device(device).type == "cpu":
        for tensor in state.values():
            flat = tensor.reshape(-1).view(torch.uint8)
            flat[::PAGE_SIZE].sum()
    return state


def convert_for_serving(
    model_dir: Path,
    files: Mapping[str, str] | None = None,
    precisions: Iterable[str] = tuple(PRECISIONS),
    verified: Collection[str] | None = None,
) -> list[Path]:
    """Writes the serving files of every precision that is not current yet; returns their paths.

    `files` maps paths relative to `model_dir` to their verified SHA-256 (what the fetch step
    passes to its after-verify hook); a source listed there is not hashed again. Safe to call
    again: current files are kept, stale ones replaced. `verified` (the hook passes every file
    the fetch step verified) restricts the checkpoints to those: a planted one is not converted.
    """
    precisions = list(precisions)
    for precision in precisions:
        precision_dtype(precision)  # reject an unknown name before any work
    model_dir = Path(model_dir)
    spec = ModelSpec.read(ModelLayout.discover(model_dir, verified))
    known = {str(Path(k)): v for k, v in (files or {}).items()}
    written: list[Path] = []
    for role, source in spec.layout.sources().items():
        todo = [p for p in precisions if not is_current(source, p)]
        if not todo:
            continue
        state = released_state(spec, role)
        source_id = SourceId.of(source, known.get(str(source.relative_to(model_dir))))
        for precision in todo:
            written.append(write_serving(source, precision, state, source_id))
            log.info("wrote %s", written[-1])
    return written


def _after_verify_hook(precision: str) -> Callable[[Path, Mapping[str, str]], list[str]]:
    """The fetch step's after-verify hook for one precision: converts, returns the written
    files relative to the model directory (the fetch step records them in its marker)."""

    def hook(model_dir: Path, files: Mapping[str, str]) -> list[str]:
        written = convert_for_serving(
            model_dir, files, precisions=(precision,), verified=files.keys()
        )
        return [p.relative_to(model_dir).as_posix() for p in written]

    def space_needed(model_dir: Path, sizes: Mapping[str, int]) -> int:
        """The serving files still to write: each released checkpoint's weights at this
        precision (as large as the checkpoint at fp32, half at 16 bits); read by the fetch
        step's free-space check before it downloads anything."""
        ratio = 1.0 if precision == "fp32" else 0.5
        need = 0
        for folder, pattern in ((GENERATOR_DIR, GENERATOR_GLOB), (STYLE_DIR, STYLE_GLOB)):
            names = sorted(
                rel
                for rel in sizes
                if PurePosixPath(rel).parent == PurePosixPath(folder.as_posix())
                and fnmatch.fnmatchcase(PurePosixPath(rel).name, pattern)
            )
            if names and not serving_path(Path(model_dir) / names[-1], precision).exists():
                need += int(sizes[names[-1]] * ratio)
        return need

    hook.__name__ = f"convert_{precision}"
    hook.space_needed = space_needed  # type: ignore[attr-defined]
    return hook


# `--after-verify emotivoice_tts.convert:convert_fp16`: the operator converts only the precision
# its pods load, not all three (about 1.15 GB of extra disk for the full-size model).
convert_fp32 = _after_verify_hook("fp32")
convert_fp16 = _after_verify_hook("fp16")
convert_bf16 = _after_verify_hook("bf16")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["ModelLoadError", "convert_for_serving", "is_current", "serving_path"]
