"""Trivial --after-verify hooks for the tests (the real converter lives with the server)."""

from __future__ import annotations

from pathlib import Path


def derive(dest: Path, files: dict[str, str]) -> None:
    """Write one artifact per model file, keyed by the source checksum."""
    out = dest / "derived"
    out.mkdir(exist_ok=True)
    for relpath, sha in sorted(files.items()):
        (out / f"{sha[:16]}.meta").write_text(f"{relpath} {(dest / relpath).stat().st_size}\n")


def derive_other(dest: Path, files: dict[str, str]) -> list[str]:
    """A different converter: one summary file, declared by returning its path."""
    (dest / "summary.txt").write_text("\n".join(sorted(files)) + "\n")
    return ["summary.txt"]


def fail_midway(dest: Path, files: dict[str, str]) -> None:
    (dest / "derived").mkdir(exist_ok=True)
    (dest / "derived" / "half.bin").write_bytes(b"\0" * 1000)
    raise RuntimeError("converter ran out of memory")


def spoil(dest: Path, files: dict[str, str]) -> None:
    first = sorted(files)[0]
    with open(dest / first, "ab") as f:
        f.write(b"oops")


def large_safetensors(dest: Path, files: dict[str, str]) -> None:
    """16 MB of serving weights written the way the converter writes them (safetensors): on a
    small volume, safetensors' own SafetensorError carries the OS's "No space left on device"."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(4 * 1024 * 1024, dtype=np.float32)}, str(dest / "big.safetensors"))


def huge(dest: Path, files: dict[str, str]) -> None:
    """Never reached: its declared outputs cannot fit on any volume."""
    raise AssertionError("the free-space check should have stopped the fetch")


huge.space_needed = lambda dest, sizes: 1 << 60  # type: ignore[attr-defined]
