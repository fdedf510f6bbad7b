"""The warm-start listing signs its requests exactly as botocore does.

botocore's signer is used here only as the reference implementation to compare against.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from emotivoice_fetch.config import Credentials
from emotivoice_fetch.quick import EMPTY_SHA256, sign_v4

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("path", "query", "token"),
    [
        ("/bkt/", {"list-type": "2", "prefix": "models/a b+c/"}, None),
        ("/bkt/models/x y/SHA256SUMS", {}, "session-token"),
        ("/", {"list-type": "2", "prefix": "ünï/"}, None),
    ],
)
def test_signature_matches_botocore(path: str, query: dict[str, str], token: str | None) -> None:
    ours = sign_v4(
        "GET", "127.0.0.1:9000", path, query, Credentials("AKID", "SECRET", token), "eu-west-1", NOW
    )
    url = "http://127.0.0.1:9000" + urllib.parse.quote(path)
    if query:
        url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    request = AWSRequest("GET", url, headers={"x-amz-content-sha256": EMPTY_SHA256})
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(BotoCredentials("AKID", "SECRET", token), "s3", "eu-west-1").add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]


def test_anonymous_requests_are_not_signed() -> None:
    headers = sign_v4("GET", "h", "/b/", {}, Credentials(), "us-east-1", NOW)
    assert "authorization" not in headers
