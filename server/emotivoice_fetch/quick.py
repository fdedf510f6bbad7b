"""A minimal S3 reader for the warm-start check, so that a complete cache is confirmed without
paying ~0.3 s to import boto3 and build its client.

It signs with AWS Signature Version 4 (hmac + hashlib), sends one ListObjectsV2 (and, with
--manifest, one GET) over http.client, and parses the XML. It is an accelerator only: any
surprise (an error status, a truncated listing, odd XML) raises `QuickMiss` and the caller goes
the full boto3 way, which also produces the proper error messages. Only a store that does not
answer (refused, reset or timed-out connections, an unresolvable name, a 5xx) is told apart, as
`QuickUnreachable`: boto3 would meet the same network, so the caller need not ask it too.
Downloads always use boto3.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import urllib.parse
from xml.etree import ElementTree

from emotivoice_fetch.config import Credentials, Source
from emotivoice_fetch.plan import RemoteObject, relpath_of

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class QuickMiss(Exception):
    """The quick path could not answer; use boto3. Not a TransientError: retrying the quick
    path is never worth it, so `with_retries` lets it through at once."""


class QuickUnreachable(QuickMiss):
    """The store did not answer at all (or answered 5xx): boto3 would not fare better."""


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def sign_v4(
    method: str,
    host: str,
    path: str,
    query: dict[str, str],
    credentials: Credentials,
    region: str,
    now: dt.datetime,
) -> dict[str, str]:
    """Headers for a SigV4-signed S3 request with an empty body (pure; `now` in UTC)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amz_date}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    if credentials.anonymous:
        return headers
    assert credentials.secret_access_key is not None
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            _quote(path, safe="/-_.~"),
            "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items())),
            "".join(f"{k}:{headers[k].strip()}\n" for k in sorted(headers)),
            signed,
            EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + credentials.secret_access_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def _describe(exc: BaseException, timeout_s: float) -> str:
    """Why a request got no answer, in words (pure)."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return type(exc).__name__


class QuickS3:
    """ListObjectsV2 and small GETs, one connection, a short timeout, no retries."""

    def __init__(self, source: Source, credentials: Credentials, timeout_s: float = 3.0) -> None:
        endpoint = source.endpoint_url or f"https://s3.{source.region}.amazonaws.com"
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise QuickMiss("endpoint not handled by the quick path")
        self.source = source
        self.credentials = credentials
        self.https = url.scheme == "https"
        self.netloc = url.netloc
        self.base = "/" + source.bucket if source.path_style else ""
        if not source.path_style:
            self.netloc = f"{source.bucket}.{url.netloc}"
        self.timeout_s = timeout_s

    def _get(self, path: str, query: dict[str, str]) -> bytes:
        headers = sign_v4(
            "GET",
            self.netloc,
            path,
            query,
            self.credentials,
            self.source.region,
            dt.datetime.now(dt.UTC),
        )
        target = _quote(path, safe="/-_.~")
        if query:
            target += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        conn_type = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = conn_type(self.netloc, timeout=self.timeout_s)
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise QuickUnreachable(f"{self.netloc}: {_describe(exc, self.timeout_s)}") from None
        finally:
            conn.close()
        if resp.status >= 500:
            raise QuickUnreachable(f"{self.netloc} answered {resp.status}")
        if resp.status != 200:
            raise QuickMiss(f"quick request answered {resp.status}")
        return body

    def list_objects(self) -> list[RemoteObject]:
        query = {"list-type": "2", "prefix": self.source.prefix}
        body = self._get(self.base + "/", query)
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise QuickMiss("unparsable listing") from None
        if root.findtext(f"{S3_NS}IsTruncated", "false") != "false":
            raise QuickMiss("listing spans several pages")
        out = []
        for item in root.iter(f"{S3_NS}Contents"):
            key = item.findtext(f"{S3_NS}Key")
            size = item.findtext(f"{S3_NS}Size")
            etag = item.findtext(f"{S3_NS}ETag")
            if key is None or size is None or etag is None:
                raise QuickMiss("listing entry without Key, Size or ETag")
            relpath = relpath_of(key, self.source.prefix)
            if relpath is not None:
                out.append(RemoteObject(relpath, key, int(size), etag))
        return out

    def read_small(self, key: str, limit: int) -> bytes:
        body = self._get(f"{self.base}/{key}", {})
        if len(body) > limit:
            raise QuickMiss("manifest too large")
        return body

    def open_range(self, key: str, start: int, end: int, etag: str | None, size: int):  # type: ignore[no-untyped-def]
        raise QuickMiss("the quick path does not download")
