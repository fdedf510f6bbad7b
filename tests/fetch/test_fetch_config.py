"""Arguments, environment and manifests become a typed config, or a clear error."""

from __future__ import annotations

import json

import pytest

from emotivoice_fetch.cli import build_parser, config_from
from emotivoice_fetch.config import credentials_from_env, parse_expected_sha256, parse_source_uri
from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.manifest import merge_expectations, parse_sha256sum

A = "a" * 64
B = "b" * 64


def test_source_uri() -> None:
    assert parse_source_uri("s3://bucket/models/x") == ("bucket", "models/x/")
    assert parse_source_uri("s3://bucket/models/x/") == ("bucket", "models/x/")
    assert parse_source_uri("s3://bucket") == ("bucket", "")
    for bad in ("http://bucket/x", "s3:///x", "bucket/x"):
        with pytest.raises(FetchError) as err:
            parse_source_uri(bad)
        assert err.value.code == ExitCode.USAGE
        assert "s3://BUCKET/PREFIX" in err.value.message


def test_expected_sha256_from_env() -> None:
    assert parse_expected_sha256(json.dumps({"a/b.bin": A.upper()})) == {"a/b.bin": A}
    assert parse_expected_sha256(None) == {}
    cases = {
        "{not json": "not valid JSON",
        '["x"]': "must be a JSON object",
        '{"a": "123"}': "expected 64 hex characters",
        json.dumps({"../x": A}): "not a safe relative path",
    }
    for text, message in cases.items():
        with pytest.raises(FetchError) as err:
            parse_expected_sha256(text)
        assert message in err.value.message
        assert "EMOTIVOICE_EXPECTED_SHA256" in err.value.message


def test_credentials_both_or_neither_and_never_in_repr() -> None:
    creds = credentials_from_env({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert not creds.anonymous
    assert "s3cr3t" not in repr(creds) and "AKID" not in repr(creds)
    assert credentials_from_env({}).anonymous
    with pytest.raises(FetchError) as err:
        credentials_from_env({"AWS_ACCESS_KEY_ID": "AKID"})
    assert "AWS_SECRET_ACCESS_KEY is not set" in err.value.message


def test_sha256sum_manifest() -> None:
    text = f"# model v1\n{A}  config.json\n{B} *./ckpt/g_00140000\n\n"
    assert parse_sha256sum(text, "m") == {"config.json": A, "ckpt/g_00140000": B}
    for bad, message in {
        f"{A}\n": "line 1 is not",
        "xyz  a\n": "not a sha256 digest",
        f"{A}  a\n{B}  a\n": "twice with different sums",
        "# nothing\n": "lists no files",
    }.items():
        with pytest.raises(FetchError) as err:
            parse_sha256sum(bad, "manifest s3://b/m/SHA256SUMS")
        assert message in err.value.message


def test_manifest_and_pins_must_agree() -> None:
    manifest = {"a": A, "b": B}
    assert merge_expectations(manifest, {"a": A}, "m") == manifest
    assert merge_expectations(None, {"a": A}, "m") == {"a": A}
    with pytest.raises(FetchError) as err:
        merge_expectations(manifest, {"a": B}, "m")
    assert err.value.code == ExitCode.CHECKSUM_MISMATCH
    with pytest.raises(FetchError) as err:
        merge_expectations(manifest, {"c": A}, "m")
    assert "does not list it" in err.value.message


def test_cli_arguments_build_the_config(tmp_path) -> None:
    args = build_parser().parse_args(
        [
            "--source",
            "s3://bkt/models/emo",
            "--dest",
            str(tmp_path),
            "--endpoint-url",
            "http://minio:9000",
            "--path-style",
            "--manifest",
            "SHA256SUMS",
            "--concurrency",
            "4",
            "--part-size-mb",
            "8",
            "--lock-timeout",
            "12",
        ]
    )
    config = config_from(args, {"EMOTIVOICE_EXPECTED_SHA256": json.dumps({"x": A})})
    assert config.source.uri == "s3://bkt/models/emo/"
    assert config.source.key_for("SHA256SUMS") == "models/emo/SHA256SUMS"
    assert config.source.path_style and config.source.endpoint_url == "http://minio:9000"
    assert (config.concurrency, config.part_size, config.lock_timeout_s) == (4, 8 << 20, 12.0)
    assert config.expected_sha256 == {"x": A}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--source", "s3://b/p", "--dest", "d", "--concurrency", "0"])
