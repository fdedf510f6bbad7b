"""The operator's fetch step, read by the fetch step itself: every rendered ``fetch-model`` init
container's arguments and environment go through ``emotivoice-fetch``'s own parser and config
(``emotivoice_fetch.cli.build_parser``/``config_from``), as the kubelet would hand them over.

A flag the operator renders that the CLI does not know, a value it parses differently, or an
environment name spelled apart from ``emotivoice_fetch.config`` fails here, not in a pod.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emotivoice_fetch import report as fetch_report
from emotivoice_fetch.cli import build_parser, config_from
from emotivoice_fetch.config import (
    ACCESS_KEY_ENV,
    DEFAULT_CONCURRENCY,
    DEFAULT_REGION,
    EXPECTED_SHA256_ENV,
    SECRET_KEY_ENV,
    FetchConfig,
    parse_source_uri,
)
from emotivoice_fetch.durability import DEFAULT_DURABILITY, Durability
from emotivoice_fetch.hook import load_hook
from emotivoice_operator.cli_render import load_services
from emotivoice_operator.crd.schema import spec_schema
from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.desired import desired_state
from emotivoice_operator.render import Owner, names
from emotivoice_operator.render.deployment import CONVERT_HOOK, precision
from emotivoice_operator.settings import OperatorSettings
from tests.support.kubelet_expansion import expand

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {s["metadata"]["name"]: s for s in load_services([ROOT / "examples"])}
OWNER = Owner(name="tts", namespace="voice", uid="5b0c1d2e-0000-4000-8000-000000000002")
AT = datetime(2026, 1, 5, 3, tzinfo=UTC)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ak-test", "AWS_SECRET_ACCESS_KEY": "sk-test"}


def _variants() -> dict[str, dict[str, Any]]:
    """Every example, and the fields the examples leave at their defaults set the other way."""
    out = {name: body for name, body in SERVICES.items()}
    base = SERVICES["tts-minimal"]
    edits: dict[str, dict[str, Any]] = {
        "checksums": {"source": {"checksums": {"b.bin": "b" * 64, "a/c.bin": "c" * 64}}},
        "durability-fsync": {"cache": {"durability": "fsync"}},
        "durability-boot": {"cache": {"durability": "boot"}},
        "released": {"loadFormat": "released"},
        "fp16": {"precision": "fp16"},
        "bf16": {"precision": "bf16"},
        "aws-no-endpoint": {"source": {"endpoint": None, "region": "eu-west-1", "concurrency": 3}},
        "trailing-slash": {"source": {"uri": "s3://models/emotivoice/v1/"}},
        "path-style-off": {"source": {"pathStyle": False}},
        "dollar": {"source": {"uri": "s3://models/$(AWS_SECRET_ACCESS_KEY)"}},
    }
    for name, edit in edits.items():
        body = copy.deepcopy(base)
        model = body["spec"]["model"]
        for key, value in edit.items():
            if isinstance(value, dict):
                target = model.setdefault(key, {})
                for k, v in value.items():
                    if v is None:
                        target.pop(k, None)
                    else:
                        target[k] = v
            else:
                model[key] = value
        out[f"tts-minimal+{name}"] = body
    return out


VARIANTS = _variants()


def _fetch_container(body: dict[str, Any]) -> dict[str, Any]:
    desired = desired_state(body["spec"], OWNER, AT, {}, OperatorSettings())
    (workload,) = [m for m in desired.manifests if m["kind"] in ("Deployment", "StatefulSet")]
    (init,) = workload["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["emotivoice-fetch"]
    return init


def _kubelet_view(init: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Arguments and environment as the process sees them: Secret references resolved to test
    values, ``$(VAR)`` expanded the kubelet's way."""
    env: dict[str, str] = {}
    for entry in init.get("env", []):
        if "valueFrom" in entry:
            env[entry["name"]] = CREDENTIALS[entry["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[entry["name"]] = expand(entry["value"], env)
    return [expand(a, env) for a in init["args"]], env


def _config(body: dict[str, Any]) -> tuple[FetchConfig, list[str], dict[str, str]]:
    args, env = _kubelet_view(_fetch_container(body))
    return config_from(build_parser().parse_args(args), env), args, env


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_rendered_fetch_step_parses_into_what_the_spec_says(name: str) -> None:
    body = VARIANTS[name]
    spec = parse_spec(body["spec"])
    config, args, env = _config(body)
    source = spec.model.source

    bucket, prefix = parse_source_uri(source.uri)
    assert (config.source.bucket, config.source.prefix) == (bucket, prefix)
    assert config.source.endpoint_url == source.endpoint
    assert config.source.region == source.region
    assert config.source.path_style == source.uses_path_style
    assert config.dest == Path(names.model_dir(source.uri))
    assert config.manifest_key == source.checksum_manifest
    assert config.concurrency == source.concurrency
    assert dict(config.expected_sha256) == (source.checksums or {})
    assert config.durability == Durability(spec.model.cache.durability or DEFAULT_DURABILITY)
    expected_hook = (
        CONVERT_HOOK.format(precision=precision(spec))
        if spec.model.load_format == "converted"
        else None
    )
    assert config.after_verify == expected_hook
    parsed = build_parser().parse_args(args)
    assert parsed.report == Path(fetch_report.TERMINATION_LOG)
    if source.credentials_secret:
        assert config.credentials.access_key_id == CREDENTIALS["AWS_ACCESS_KEY_ID"]
        assert config.credentials.secret_access_key == CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    else:
        assert config.credentials.anonymous
    # Nothing rendered that the fetch step does not read.
    assert set(env) <= {ACCESS_KEY_ENV, SECRET_KEY_ENV, EXPECTED_SHA256_ENV}


def test_a_dollar_in_the_uri_reaches_the_fetch_step_as_written() -> None:
    config, _, _ = _config(VARIANTS["tts-minimal+dollar"])
    assert config.source.prefix == "$(AWS_SECRET_ACCESS_KEY)/"


def test_checksums_travel_in_the_variable_the_fetch_step_reads() -> None:
    _, _, env = _config(VARIANTS["tts-minimal+checksums"])
    assert json.loads(env[EXPECTED_SHA256_ENV]) == {"a/c.bin": "c" * 64, "b.bin": "b" * 64}


def test_the_crds_source_defaults_are_the_fetch_steps() -> None:
    """Region and concurrency default in both the CRD (so kubectl shows them) and the fetch CLI
    (run by hand): the two must agree."""
    source = spec_schema()["properties"]["model"]["properties"]["source"]["properties"]
    assert source["region"]["default"] == DEFAULT_REGION
    assert source["concurrency"]["default"] == DEFAULT_CONCURRENCY
    parsed = build_parser().parse_args(["--source", "s3://b/p", "--dest", "/d"])
    assert (parsed.region, parsed.concurrency) == (DEFAULT_REGION, DEFAULT_CONCURRENCY)


@pytest.mark.parametrize("chosen", ["fp32", "fp16", "bf16"])
def test_every_convert_hook_the_operator_can_name_exists(chosen: str) -> None:
    """The hook is spelled in the operator (its image has no torch); it must load."""
    enum = spec_schema()["properties"]["model"]["properties"]["precision"]["enum"]
    assert set(enum) - {"auto"} == {"fp32", "fp16", "bf16"}
    hook = load_hook(CONVERT_HOOK.format(precision=chosen))
    assert hook.__name__ == f"convert_{chosen}"
