"""The operator's server container, read by the server itself: every rendered ``server``
container's arguments and environment go through ``emotivoice-server``'s own parser and reader
(``emotivoice_server.cli.settings_from``: ``serve_parser``, ``EMOTIVOICE_WARMUP`` through
``parse_warmup``, the environment through ``settings.resolve``), as the kubelet would hand them
over. The pre-warm CronJob's plan goes through the reader its priming uses.

A flag the operator renders that the server does not know, one it stops rendering, a value the
server reads differently, or an environment name spelled apart from the server's fails here, not
in a pod (before this, only the e2e suite on a real node checked this seam).
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from emotivoice_operator import prewarm_job
from emotivoice_operator.cli_render import load_services
from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.desired import desired_state
from emotivoice_operator.render import Owner, names
from emotivoice_operator.render.deployment import precision
from emotivoice_operator.settings import OperatorSettings
from emotivoice_server import cli as server_cli
from emotivoice_server import settings as server_settings
from emotivoice_server.warmup import DEFAULT_PHRASES, DEFAULT_PROMPTS, ENV_WARMUP, parse_warmup
from tests.operator.test_fetch_contract import AT
from tests.support.kubelet_expansion import expand

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {s["metadata"]["name"]: s for s in load_services([ROOT / "examples"])}
OWNER = Owner(name="tts", namespace="voice", uid="5b0c1d2e-0000-4000-8000-000000000003")
# What the server process reads from its environment, beside HOME (set for jieba's cache).
SERVER_ENV = {
    ENV_WARMUP,
    server_settings.ENV_POOL,
    server_settings.ENV_MAX_QUEUE,
    server_settings.ENV_THREADS,
    server_settings.ENV_TORCH_THREADS,
    server_settings.ENV_QUEUE_TIMEOUT,
}


def _variants() -> dict[str, dict[str, Any]]:
    """Every example, and the server fields the examples leave at their defaults set otherwise."""
    out = dict(SERVICES)
    base = SERVICES["tts-minimal"]
    edits: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "gpu-fp16": ({"precision": "fp16"}, {"gpus": 1}),
        "bf16": ({"precision": "bf16"}, {}),
        "released": ({"loadFormat": "released"}, {}),
        "port": ({}, {"port": 9090}),
        "warmup-phrases": ({}, {"warmup": {"phrases": ["Only this."], "voices": ["8051"]}}),
        "warmup-no-phrases": ({}, {"warmup": {"phrases": [], "prompts": ["Happy"]}}),
        "warmup-empty-prompts": ({}, {"warmup": {"prompts": []}}),
        "user-env": ({}, {"env": [{"name": server_settings.ENV_MAX_QUEUE, "value": "3"}]}),
    }
    for name, (model, server) in edits.items():
        body = copy.deepcopy(base)
        body["spec"]["model"].update(model)
        body["spec"].setdefault("server", {}).update(server)
        out[f"tts-minimal+{name}"] = body
    return out


VARIANTS = _variants()


def _manifests(body: dict[str, Any]) -> list[dict[str, Any]]:
    return desired_state(body["spec"], OWNER, AT, {}, OperatorSettings()).manifests


def _workload(body: dict[str, Any]) -> dict[str, Any]:
    (workload,) = [m for m in _manifests(body) if m["kind"] in ("Deployment", "StatefulSet")]
    return workload


def _env_view(entries: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str]:
    """The environment as the process sees it: the pod's own labels resolved from field
    references, ``$(VAR)`` expanded the kubelet's way, a later entry winning."""
    env: dict[str, str] = {}
    for entry in entries:
        if "valueFrom" in entry:
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            if path == "metadata.namespace":
                env[entry["name"]] = OWNER.namespace
                continue
            match = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
            assert match, f"{entry['name']}: a field reference this test cannot resolve: {path}"
            env[entry["name"]] = labels.get(match.group(1), "")
        else:
            env[entry["name"]] = expand(entry["value"], env)
    return env


def _server_view(body: dict[str, Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    template = _workload(body)["spec"]["template"]
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "server"]
    env = _env_view(container["env"], template["metadata"]["labels"])
    return container, [expand(a, env) for a in container["args"]], env


def _settings(body: dict[str, Any]) -> server_settings.ServerSettings:
    _, args, env = _server_view(body)
    try:
        return server_cli.settings_from(args, env)
    except SystemExit:  # argparse: a flag the server does not know, or a value it refuses
        pytest.fail(f"emotivoice-server refuses the rendered arguments {args}")


def test_the_rendered_command_is_the_servers_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    container, _, _ = _server_view(SERVICES["tts-minimal"])
    (command,) = container["command"]
    assert scripts[command] == "emotivoice_server.cli:main"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_rendered_server_container_parses_into_what_the_spec_says(name: str) -> None:
    body = VARIANTS[name]
    spec = parse_spec(body["spec"])
    _, _, env = _server_view(body)
    settings = _settings(body)

    assert settings.model_dir == Path(names.model_dir(spec.model.source.uri))
    assert settings.port == spec.server.port
    assert settings.precision == precision(spec)
    assert settings.load_format == spec.model.load_format
    assert settings.device == ("cuda" if spec.server.gpus else "cpu")
    # The cache volume is read-only in the server container: nothing persisted, marker required.
    assert settings.embedding_cache_file is None
    assert settings.require_marker
    # The pool every answer names is the pod's instance label, the Service's selector.
    assert (
        settings.pool
        == _workload(body)["spec"]["template"]["metadata"]["labels"][names.LABEL_INSTANCE]
    )
    assert settings.pool
    # Nothing rendered that the server does not read.
    assert set(env) - {"HOME"} <= SERVER_ENV


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_warmup_plan_reaches_the_server_as_the_spec_says(name: str) -> None:
    warmup = parse_spec(VARIANTS[name]["spec"]).server.warmup
    got = _settings(VARIANTS[name]).warmup
    assert got.phrases == (DEFAULT_PHRASES if warmup.phrases is None else tuple(warmup.phrases))
    assert got.voices == tuple(warmup.voices or ())
    assert got.prompts == (tuple(warmup.prompts) if warmup.prompts else DEFAULT_PROMPTS)


def test_the_variants_set_what_they_name() -> None:
    """The edits above reach the server (a variant the render ignored would prove nothing)."""
    assert _settings(VARIANTS["tts-minimal+gpu-fp16"]).device == "cuda"
    assert _settings(VARIANTS["tts-minimal+port"]).port == 9090
    assert _settings(VARIANTS["tts-minimal+released"]).load_format == "released"
    assert _settings(VARIANTS["tts-minimal+warmup-phrases"]).warmup.phrases == ("Only this.",)
    assert _settings(VARIANTS["tts-minimal+warmup-no-phrases"]).warmup.phrases == ()
    assert _settings(VARIANTS["tts-minimal+user-env"]).max_queue == 3


def _cronjob_container(body: dict[str, Any]) -> dict[str, Any]:
    cronjobs = [m for m in _manifests(body) if m["kind"] == "CronJob"]
    (container,) = cronjobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


PREWARMED = sorted(
    name for name, body in SERVICES.items() if any(m["kind"] == "CronJob" for m in _manifests(body))
)


def test_some_examples_have_prewarm_jobs() -> None:
    assert PREWARMED


@pytest.mark.parametrize("name", PREWARMED)
def test_the_prewarm_job_primes_with_the_servers_plan_at_the_servers_port(name: str) -> None:
    """The pre-warm job's priming reads EMOTIVOICE_WARMUP as the server does (the same plan),
    and its --url is the server's Service at the server's port."""
    body = VARIANTS[name]
    container = _cronjob_container(body)
    env = _env_view(container["env"], {})
    args = prewarm_job.build_parser(env).parse_args([expand(a, env) for a in container["args"]])
    assert args.namespace == OWNER.namespace
    assert args.url.endswith(f":{_settings(body).port}")
    assert parse_warmup(env.get(ENV_WARMUP), ENV_WARMUP) == _settings(body).warmup
    assert env[ENV_WARMUP] == _server_view(body)[2][ENV_WARMUP]
