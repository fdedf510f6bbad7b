"""Expected checksums: the manifest object (sha256sum format) and the spec's pinned digests.

Pure functions; the caller reads the manifest object and the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

from emotivoice_fetch.config import EXPECTED_SHA256_ENV, normalize_sha256
from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.paths import check_relpath


def parse_sha256sum(text: str, where: str) -> dict[str, str]:
    """Parse `sha256sum` output: one `<hex>  <relpath>` (or `<hex> *<relpath>`) per line.

    Blank lines and `#` comments are skipped; a leading `./` is dropped, as `sha256sum ./x` writes.
    """
    entries: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        digest, sep, rest = stripped.partition(" ")
        if not sep or not rest:
            raise FetchError(
                ExitCode.USAGE,
                f"{where} line {lineno} is not '<sha256 hex>  <relative path>': {line!r}",
            )
        relpath = rest[1:] if rest[:1] in (" ", "*") else rest
        relpath = relpath.removeprefix("./")
        at = f"{where} line {lineno}"
        relpath = check_relpath(relpath, at)
        digest = normalize_sha256(digest, at)
        if entries.get(relpath, digest) != digest:
            raise FetchError(ExitCode.USAGE, f"{at} lists {relpath!r} twice with different sums")
        entries[relpath] = digest
    if not entries:
        raise FetchError(ExitCode.USAGE, f"{where} lists no files")
    return entries


def merge_expectations(
    manifest: Mapping[str, str] | None, pinned: Mapping[str, str], manifest_where: str
) -> dict[str, str]:
    """Combine the manifest with the spec's pins; where both are given they must agree exactly."""
    if manifest is None:
        return dict(pinned)
    for relpath, digest in sorted(pinned.items()):
        listed = manifest.get(relpath)
        if listed is None:
            raise FetchError(
                ExitCode.USAGE,
                f"{EXPECTED_SHA256_ENV} pins {relpath!r} but {manifest_where} does not list it: "
                "the spec's checksums and the manifest must describe the same model",
            )
        if listed != digest:
            raise FetchError(
                ExitCode.CHECKSUM_MISMATCH,
                f"{EXPECTED_SHA256_ENV} and {manifest_where} disagree on {relpath!r} "
                f"({digest[:12]}... vs {listed[:12]}...): fix the spec or the manifest",
            )
    return dict(manifest)
