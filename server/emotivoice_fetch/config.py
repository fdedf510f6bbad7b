"""The fetch step's settings as one typed object, built from arguments and the environment.

Pure: `environ` is passed in, never read or written here, so tests feed plain dicts. Credentials
come only from the environment (the operator fills it from a Secret) and are kept out of `repr`
so that no log line or traceback can print them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emotivoice_fetch.durability import DEFAULT_DURABILITY, Durability
from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.paths import check_relpath

EXPECTED_SHA256_ENV = "EMOTIVOICE_EXPECTED_SHA256"
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN_ENV = "AWS_SESSION_TOKEN"

DEFAULT_REGION = "us-east-1"
DEFAULT_CONCURRENCY = 8
DEFAULT_PART_SIZE_MB = 8
DEFAULT_LOCK_TIMEOUT_S = 30.0
# With a verified cache to start on, the store gets one check of at most this long in all (see
# remote.py): long enough for a listing from a loaded store, short next to a pod's start.
DEFAULT_REMOTE_CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Credentials:
    """Static S3 credentials; `None` fields mean anonymous (unsigned) requests."""

    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def anonymous(self) -> bool:
        return self.access_key_id is None


@dataclass(frozen=True)
class Source:
    """Where the model lives: `s3://bucket/prefix` plus how to reach the store."""

    bucket: str
    prefix: str  # "" or ends with "/"
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    path_style: bool = False

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key_for(self, relpath: str) -> str:
        return self.prefix + relpath


@dataclass(frozen=True)
class FetchConfig:
    """Everything one fetch run needs; built once by the CLI, passed explicitly."""

    source: Source
    dest: Path
    credentials: Credentials = field(default_factory=Credentials)
    manifest_key: str | None = None  # relative to the prefix
    expected_sha256: Mapping[str, str] = field(default_factory=dict)  # from the spec (env)
    concurrency: int = DEFAULT_CONCURRENCY
    part_size: int = DEFAULT_PART_SIZE_MB * 1024 * 1024
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    after_verify: str | None = None  # "module:function"
    progress_interval_s: float = 5.0
    durability: Durability = DEFAULT_DURABILITY  # see durability.py
    remote_check_timeout_s: float = DEFAULT_REMOTE_CHECK_TIMEOUT_S


def parse_source_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into (bucket, prefix) with the prefix ending in "/" (or empty).

    A prefix is a folder of objects: `s3://b/models/x` and `s3://b/models/x/` both mean the
    objects whose keys start with `models/x/`, so `models/x-old/` is never picked up by accident.
    """
    scheme = "s3://"
    if not uri.startswith(scheme):
        raise FetchError(
            ExitCode.USAGE,
            f"--source {uri!r} is not an S3 URI: write it as s3://BUCKET/PREFIX",
        )
    rest = uri[len(scheme) :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise FetchError(ExitCode.USAGE, f"--source {uri!r} names no bucket: s3://BUCKET/PREFIX")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def parse_expected_sha256(text: str | None) -> dict[str, str]:
    """Parse `EMOTIVOICE_EXPECTED_SHA256`: a JSON object {"relative/path": "<64 hex>"}."""
    if text is None or not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FetchError(
            ExitCode.USAGE,
            f"{EXPECTED_SHA256_ENV} is not valid JSON ({exc.msg} at character {exc.pos}): "
            'set it to an object like {"model/config.json": "<sha256 hex>"}',
        ) from None
    if not isinstance(raw, dict):
        raise FetchError(
            ExitCode.USAGE,
            f"{EXPECTED_SHA256_ENV} must be a JSON object of relative path -> sha256 hex",
        )
    expected: dict[str, str] = {}
    for relpath, digest in raw.items():
        where = f"{EXPECTED_SHA256_ENV}[{relpath!r}]"
        check_relpath(relpath, where)
        expected[relpath] = normalize_sha256(digest, where)
    return expected


def normalize_sha256(digest: object, where: str) -> str:
    """Lower-case a sha256 hex digest, or fail naming `where` it came from."""
    if not isinstance(digest, str):
        raise FetchError(ExitCode.USAGE, f"{where} must be a 64-character sha256 hex string")
    value = digest.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise FetchError(
            ExitCode.USAGE,
            f"{where} = {digest!r} is not a sha256 digest: expected 64 hex characters",
        )
    return value


def credentials_from_env(environ: Mapping[str, str]) -> Credentials:
    """Read the static credentials; both key variables or neither (anonymous)."""
    access = environ.get(ACCESS_KEY_ENV) or None
    secret = environ.get(SECRET_KEY_ENV) or None
    token = environ.get(SESSION_TOKEN_ENV) or None
    if (access is None) != (secret is None):
        missing = ACCESS_KEY_ENV if access is None else SECRET_KEY_ENV
        raise FetchError(
            ExitCode.USAGE,
            f"{missing} is not set while its partner is: set both "
            f"{ACCESS_KEY_ENV} and {SECRET_KEY_ENV} (from the model's Secret) or neither",
        )
    return Credentials(access, secret, token if access else None)
