"""Steps of the server image's build (standard library only: it runs before our package is
installed).

    python3 image_build.py deps pyproject.toml EXTRA...   the extras' requirements, the
        package's references to its own extras expanded, torch left out (it has a layer of its
        own below, so a dependency change does not re-ship gigabytes)
    python3 image_build.py prune-cpu                      the CPU variant: delete what a CPU
        process never loads from torch's CUDA dependencies, print what went

What the CPU variant can drop, measured: PyPI's Linux torch wheel is the CUDA build (the CPU
wheels live on another index), and `libtorch.so` links `libtorch_cuda.so`, whose DT_NEEDED list
names eleven CUDA libraries, so `import torch` fails without them (an image built without them
proved it). What is never mapped on CPU can go: triton (torch.compile's GPU code generator),
cuDNN's engine libraries (its 130 KB front library loads them on first GPU use), cuSOLVER's
multi-GPU library, static archives, device bitcode and profiler libraries (3,318 files, 2.28 GB
with torch 2.15). The rule is not a list: import torch, run CPU kernels, read which files are
mapped, delete the other files under the CUDA packages; the build then imports torch again.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

# Where torch's CUDA dependencies (nvidia-cublas, nvidia-cudnn-cu13, ...) and triton put their
# files in site-packages: the only places the CPU variant deletes from.
GPU_ONLY_DIRS = ("nvidia", "triton")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def name_of(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return _normal(match.group(1))


def extras_requirements(pyproject: dict, extras: Iterable[str], leave_out: set[str]) -> list[str]:
    """Requirements of the named extras, self-references (`pkg[other]`) expanded, in order,
    each once, without the distributions named in `leave_out`."""
    project = pyproject["project"]
    own = _normal(project["name"])
    table: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in table:
            raise ValueError(f"pyproject.toml has no extra {extra!r} (known: {sorted(table)})")
        seen.add(extra)
        for requirement in table[extra]:
            match = _NAME.match(requirement)
            if match and _normal(match.group(1)) == own:
                todo += [e.strip() for e in (match.group(3) or "").split(",") if e.strip()]
            else:
                out.append(requirement)
    unique = dict.fromkeys(r for r in out if name_of(r) not in leave_out)
    return list(unique)


def unused_cuda_files(site: Path, mapped: set[str]) -> list[Path]:
    """Files under the CUDA packages (nvidia/, triton/) that are not mapped into this process."""
    out = []
    for top in GPU_ONLY_DIRS:
        root = site / top
        if root.is_dir():
            out += [
                p
                for p in sorted(root.rglob("*"))
                # Python files stay: they are read, not mapped, and cost kilobytes.
                if p.is_file() and p.suffix != ".py" and str(p) not in mapped
            ]
    return out


def mapped_files() -> set[str]:
    """Files this process has mapped (shared libraries loaded so far)."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                paths.add(os.path.realpath(fields[5].strip()))
    return paths


def prune_cpu() -> list[tuple[Path, int]]:
    import torch

    x = torch.randn(1, 4, 64)
    torch.nn.functional.conv1d(x, torch.randn(8, 4, 3)).sum()
    torch.nn.LSTM(64, 16, batch_first=True)(x)[0].sum()
    (x @ x.transpose(1, 2)).softmax(-1).sum()
    site = Path(torch.__file__).resolve().parents[1]
    gone = []
    for path in unused_cuda_files(site, mapped_files()):
        gone.append((path.relative_to(site), path.stat().st_size))
        path.unlink()
    return gone


def main(argv: list[str]) -> int:
    if argv[:1] == ["deps"] and len(argv) >= 3:
        pyproject = tomllib.loads(Path(argv[1]).read_text())
        lines = extras_requirements(pyproject, argv[2:], leave_out={"torch"})
    elif argv == ["prune-cpu"]:
        gone = prune_cpu()
        total = sum(size for _, size in gone)
        lines = [f"pruned {len(gone)} files, {total / 1e9:.2f} GB never loaded on CPU"]
        lines += [f"  {size / 1e6:8.1f} MB {path}" for path, size in gone if size > 10e6]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
