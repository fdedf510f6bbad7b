"""Pure planning: which objects make up the model, whether the cache is it (and whether the
spec's pins allow the cache at all), and which byte ranges are still missing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.paths import RESERVED_PREFIX, check_relpath

if TYPE_CHECKING:
    from emotivoice_fetch.config import FetchConfig, Source
    from emotivoice_fetch.marker import CompleteModel

Range = tuple[int, int]  # [start, end) in bytes


@dataclass(frozen=True)
class RemoteObject:
    """One object of the model as the store lists it."""

    relpath: str
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Request:
    """The model as the store and the checksum sources describe it right now."""

    objects: list[RemoteObject]
    expected: Mapping[str, str]  # relpath -> sha256, possibly for only some files


def matches(model: CompleteModel, config: FetchConfig, request: Request | None) -> bool:
    """Whether a verified model is the one asked for.

    Without a request (no network), only a full set of pinned checksums can say so.
    """
    if model.source != config.source.uri or model.after_verify != config.after_verify:
        return False
    if request is None:
        pinned = config.expected_sha256
        return not config.manifest_key and bool(pinned) and model.sha256 == dict(pinned)
    if set(model.files) != {obj.relpath for obj in request.objects}:
        return False
    for obj in request.objects:
        rec = model.files[obj.relpath]
        want = request.expected.get(obj.relpath)
        if rec.size != obj.size:
            return False
        if want is not None and rec.sha256 != want:
            return False
        if want is None and rec.etag != obj.etag:
            return False
    return True


def request_from_model(model: CompleteModel, source: Source) -> Request:
    """The request a verified model answered: to re-verify it without the store."""
    objects = [
        RemoteObject(rel, source.key_for(rel), rec.size, rec.etag or "")
        for rel, rec in sorted(model.files.items())
    ]
    return Request(objects, model.sha256)


def relpath_of(key: str, prefix: str) -> str | None:
    """The model-relative path for a listed key, or None for keys that are not model files."""
    if not key.startswith(prefix) or key.endswith("/"):
        return None  # outside the prefix, or a folder placeholder object
    relpath = key[len(prefix) :]
    if relpath.split("/", 1)[0].startswith(RESERVED_PREFIX):
        return None
    return check_relpath(relpath, f"object key {key!r}")


def select_objects(
    listed: Iterable[RemoteObject],
    wanted: Iterable[str] | None,
    source_uri: str,
    exclude: Iterable[str] = (),
) -> list[RemoteObject]:
    """The model's objects: the `wanted` paths (manifest or pins) or every listed object.

    Fails with MISSING_KEY naming what is absent, so a typo in a manifest is not silently
    turned into a model with a file missing.
    """
    by_path = {obj.relpath: obj for obj in listed}
    if wanted is None:
        skip = set(exclude)
        chosen = [obj for rel, obj in sorted(by_path.items()) if rel not in skip]
        if not chosen:
            raise FetchError(
                ExitCode.MISSING_KEY,
                f"no objects under {source_uri}: check model.source (bucket and prefix)",
            )
        _refuse_file_and_directory(chosen, source_uri)
        return chosen
    wanted = sorted(set(wanted))
    missing = [rel for rel in wanted if rel not in by_path]
    if missing:
        shown = ", ".join(source_uri + rel for rel in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FetchError(
            ExitCode.MISSING_KEY,
            f"missing object {shown}{more}: the checksum list names it but the bucket has no "
            "such key",
        )
    chosen = [by_path[rel] for rel in wanted]
    _refuse_file_and_directory(chosen, source_uri)
    return chosen


def _refuse_file_and_directory(objects: Sequence[RemoteObject], source_uri: str) -> None:
    """Keys `m/x` and `m/x/y` cannot both be files of one directory tree: name both (pure)."""
    paths = {obj.relpath for obj in objects}
    for rel in sorted(paths):
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in paths:
                raise FetchError(
                    ExitCode.USAGE,
                    f"{source_uri}{parent} and {source_uri}{rel} cannot both be model files: "
                    f"{parent} would have to be a file and a directory; remove or rename one "
                    "of the two objects",
                )


@dataclass(frozen=True)
class PinConflict:
    """A file whose sha256 the spec pins differently from what the verified cache holds."""

    relpath: str
    pinned: str
    cached: str | None  # None: the cache has no such file


def pin_conflicts(cached: Mapping[str, str], pinned: Mapping[str, str]) -> list[PinConflict]:
    """The pins (`checksums`, EMOTIVOICE_EXPECTED_SHA256) that the cache's marker contradicts.

    Compared before anything else, store or no store: a pin is the spec's own word on the
    model, so a cache that contradicts it is never started on as it is (a manifest does not
    take part here: its content is in the store).
    """
    return [
        PinConflict(rel, want, cached.get(rel))
        for rel, want in sorted(pinned.items())
        if cached.get(rel) != want
    ]


def describe_conflicts(conflicts: Sequence[PinConflict]) -> str:
    """`relpath` with both digests, for the first few conflicts (pure)."""
    shown = "; ".join(
        f"{c.relpath}: pinned sha256 {c.pinned}, the cache "
        + (f"holds {c.cached}" if c.cached is not None else "has no such file")
        for c in conflicts[:3]
    )
    return shown + (f"; and {len(conflicts) - 3} more" if len(conflicts) > 3 else "")


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Sort and coalesce overlapping or touching ranges."""
    merged: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def missing_ranges(size: int, done: Iterable[Range], part_size: int) -> list[Range]:
    """The byte ranges of a `size`-byte object not covered by `done`, cut into parts.

    Parts have at most `part_size` bytes; a remainder under a quarter part is folded into the
    previous part so that no tiny request is made for a file's last few bytes.
    """
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    gaps: list[Range] = []
    cursor = 0
    for start, end in merge_ranges(done):
        start, end = max(0, start), min(size, end)
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < size:
        gaps.append((cursor, size))
    parts: list[Range] = []
    for start, end in gaps:
        pos = start
        while pos < end:
            stop = min(end, pos + part_size)
            if end - stop < part_size // 4:
                stop = end
            parts.append((pos, stop))
            pos = stop
    return parts


def covered(size: int, done: Sequence[Range]) -> int:
    """How many bytes of [0, size) the ranges cover."""
    return sum(min(end, size) - max(start, 0) for start, end in merge_ranges(done) if end > start)
