"""The S3 side of the fetch step, behind a small interface; the only module that imports boto3.

Every botocore failure is translated here into either a `FetchError` (with the exit code and a
message a user can act on) or a `TransientError` (retried by the caller). Error responses from
the store are never printed as they are: some servers echo the access key id and the string to
sign in them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from emotivoice_fetch.config import Credentials, Source
from emotivoice_fetch.errors import ExitCode, FetchError, TransientError
from emotivoice_fetch.plan import RemoteObject, relpath_of

AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidSecurity",
        "XAdminUserNotFound",  # versitygw's answer to an unknown access key
    }
)
TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
)


class ObjectChanged(Exception):
    """The object's ETag no longer matches the one we started downloading."""


class ObjectStore(Protocol):
    """What the fetcher needs from an object store."""

    def list_objects(self) -> list[RemoteObject]: ...

    def read_small(self, key: str, limit: int) -> bytes: ...

    def open_range(
        self, key: str, start: int, end: int, etag: str | None, size: int
    ) -> RangeReader: ...


class RangeReader(Protocol):
    """The body of a ranged GET, read in pieces of the caller's choosing."""

    def read(self, n: int) -> bytes:
        """Up to `n` bytes (at least one); TransientError if the connection ends early."""
        ...

    def close(self) -> None:
        """Stop reading; a body closed before its end is not reused as a connection."""
        ...


class S3Store:
    """An S3 or S3-compatible store (MinIO, versitygw, Ceph RGW) reached with boto3."""

    def __init__(self, source: Source, credentials: Credentials, max_connections: int) -> None:
        import boto3  # imported here: the warm path with pinned checksums never needs it
        from botocore import UNSIGNED
        from botocore import exceptions as bexc
        from botocore.config import Config
        from urllib3 import exceptions as uexc

        self.source = source
        # Built once: `_translated` wraps every read of a download, not only each request.
        self._client_error_type: type[Exception] = bexc.ClientError
        self._transient: tuple[type[BaseException], ...] = (
            bexc.EndpointConnectionError,
            bexc.ConnectionClosedError,
            bexc.ReadTimeoutError,
            bexc.ConnectTimeoutError,
            bexc.ResponseStreamingError,
            bexc.IncompleteReadError,
            uexc.HTTPError,
            ConnectionError,
            socket.timeout,
        )
        config = Config(
            region_name=source.region,
            signature_version=UNSIGNED if credentials.anonymous else None,
            s3={"addressing_style": "path" if source.path_style else "auto"},
            max_pool_connections=max_connections,
            connect_timeout=5,
            read_timeout=30,
            retries={"total_max_attempts": 1},  # with_retries owns retrying, with backoff
            tcp_keepalive=True,
            # We verify sha256 ourselves; skip botocore's CRC pass over every downloaded byte.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=source.endpoint_url,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=config,
        )

    def list_objects(self) -> list[RemoteObject]:
        """Every object under the prefix, as model-relative paths."""
        out: list[RemoteObject] = []
        with self._translated(f"listing {self.source.uri}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.source.bucket, Prefix=self.source.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    relpath = relpath_of(item["Key"], self.source.prefix)
                    if relpath is not None:
                        out.append(
                            RemoteObject(relpath, item["Key"], int(item["Size"]), item["ETag"])
                        )
        return out

    def read_small(self, key: str, limit: int) -> bytes:
        """Read a small object (the manifest) whole; refuse one larger than `limit`."""
        with self._translated(f"reading s3://{self.source.bucket}/{key}", key=key):
            resp = self._client.get_object(Bucket=self.source.bucket, Key=key)
            if int(resp["ContentLength"]) > limit:
                raise FetchError(
                    ExitCode.USAGE,
                    f"s3://{self.source.bucket}/{key} is {resp['ContentLength']} bytes, "
                    f"too large for a checksum manifest (limit {limit})",
                )
            return resp["Body"].read()

    def open_range(
        self, key: str, start: int, end: int, etag: str | None, size: int
    ) -> RangeReader:
        """Start a GET of bytes [start, end) of an object of ``size`` bytes (the listing's);
        ObjectChanged if its ETag moved or the store's own answer gives another size.

        Without a manifest or pins the size is all a file is checked by, so the listing's word
        is not enough: the GET's Content-Range states the object's total too, and a file cut to
        a listing that contradicts it would otherwise be accepted."""
        what = f"downloading s3://{self.source.bucket}/{key}"
        with self._translated(what, key=key):
            resp = self._client.get_object(
                Bucket=self.source.bucket,
                Key=key,
                Range=f"bytes={start}-{end - 1}",
                **({"IfMatch": etag} if etag else {}),
            )
        if int(resp["ContentLength"]) != end - start:
            resp["Body"].close()
            raise FetchError(
                ExitCode.UNEXPECTED,
                f"{what}: asked for {end - start} bytes at {start}, the store sent "
                f"{resp['ContentLength']} (ranged GETs unsupported?)",
            )
        total = _range_total(str(resp.get("ContentRange") or ""))
        if total is not None and total != size:
            resp["Body"].close()
            raise ObjectChanged(
                f"{what}: the listing says {size} bytes but the store's GET says the object has "
                f"{total} (Content-Range: {resp['ContentRange']}); the two sizes disagree"
            )
        return _S3Range(self, resp["Body"], end - start, what, key)

    @contextmanager
    def _translated(self, what: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except self._client_error_type as exc:
            raise self._client_error(exc, what, key) from None
        except self._transient as exc:
            raise TransientError(f"{what}: {type(exc).__name__}") from None

    def _client_error(self, exc: Any, what: str, key: str | None) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        bucket = self.source.bucket
        where = self.source.endpoint_url or "the default AWS endpoint"
        if code in AUTH_CODES or status in (401, 403):
            return FetchError(
                ExitCode.CREDENTIALS,
                f"access denied ({code or status}) {what}: check the credentials in the "
                "model's Secret (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the bucket policy",
            )
        if code == "NoSuchBucket" or (status == 404 and key is None):
            return FetchError(
                ExitCode.MISSING_BUCKET,
                f"bucket {bucket!r} does not exist at {where} (NoSuchBucket): check the "
                "bucket name in model.source and the endpoint URL",
            )
        if code in ("NoSuchKey", "404") or status == 404:
            return FetchError(
                ExitCode.MISSING_KEY,
                f"missing object s3://{bucket}/{key}: {what} got NoSuchKey",
            )
        if code == "PreconditionFailed" or status == 412:
            return ObjectChanged(f"s3://{bucket}/{key} changed while it was being downloaded")
        if code in TRANSIENT_CODES or status >= 500:
            return TransientError(f"{what}: {code or status}")
        return FetchError(ExitCode.UNEXPECTED, f"{what}: the store answered {code or status}")


class _S3Range:
    """A ranged GET body read straight from urllib3, without botocore's extra layer."""

    def __init__(self, store: S3Store, body: Any, length: int, what: str, key: str) -> None:
        self._store = store
        self._body = body
        self._raw = body._raw_stream
        self._left = length
        self._what = what
        self._key = key

    def read(self, n: int) -> bytes:
        with self._store._translated(self._what, key=self._key):
            chunk = self._raw.read(min(n, self._left))
        if not chunk:
            raise TransientError(f"{self._what}: connection closed {self._left} bytes early")
        self._left -= len(chunk)
        return chunk  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._left:
            self._body.close()  # a half-read connection must not go back to the pool


def _range_total(content_range: str) -> int | None:
    """The object's size a Content-Range header states (``bytes 0-4/11``: 11); None when it
    does not say (no header, or ``*``)."""
    _, _, total = content_range.rpartition("/")
    return int(total) if total.isdigit() else None
