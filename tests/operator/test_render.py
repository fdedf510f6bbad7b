"""render(): pure, deterministic, and every child valid for Kubernetes 1.34."""

from __future__ import annotations

import copy
import hashlib
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from emotivoice_fetch.config import parse_source_uri
from emotivoice_operator import windows as win
from emotivoice_operator.cache_scope import decide_scope
from emotivoice_operator.cli_render import load_services
from emotivoice_operator.crd.schema import spec_schema
from emotivoice_operator.crd.spec import SpecError, parse_spec
from emotivoice_operator.desired import desired_state
from emotivoice_operator.render import Owner, RenderContext, names, render
from emotivoice_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.34"
OWNER = Owner(name="tts", namespace="voice", uid="5b0c1d2e-0000-4000-8000-000000000001")
SERVICES = {s["metadata"]["name"]: s for s in load_services([ROOT / "examples"])}


def _render(
    body: dict[str, Any],
    floor: int | None = None,
    at: datetime | None = None,
    shared_claim_exists: bool = False,
) -> dict[str, Any]:
    """Children keyed by 'Kind/name'; the floor from the windows at ``at`` unless given."""
    spec = parse_spec(body["spec"])
    windows = win.parse_windows(spec.warm_pool) if spec.warm_pool else []
    if floor is None:
        floor = win.warm_floor(
            spec.replicas.min, windows, at or datetime(2026, 1, 5, 3, tzinfo=UTC), {}
        )
    scope = decide_scope(spec, OWNER.name, shared_claim_exists).scope
    ctx = RenderContext(
        OWNER, floor, "emotivoice/server:test", cache_scope=scope, windows=tuple(windows)
    )
    out = render(spec, ctx)
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in out}


def _workload(children: dict[str, Any]) -> dict[str, Any]:
    """The server workload: the StatefulSet (PerReplica) or the Deployment (the other scopes)."""
    (workload,) = [m for m in children.values() if m["kind"] in ("Deployment", "StatefulSet")]
    return workload


def _pod(children: dict[str, Any]) -> dict[str, Any]:
    return _workload(children)["spec"]["template"]["spec"]


def _server(children: dict[str, Any]) -> dict[str, Any]:
    return _pod(children)["containers"][0]


def _init(children: dict[str, Any]) -> dict[str, Any]:
    return _pod(children)["initContainers"][0]


def _arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_rendering_is_byte_identical_across_processes() -> None:
    """The same render from processes whose string hashes differ (PYTHONHASHSEED): an order
    that came from a set or a hash would change between operator restarts, and the operator
    would rewrite every child after each one. Two processes, every example, byte for byte."""
    outputs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-m", "emotivoice_operator.main", "render", str(ROOT / "examples"),
             "--at", "2026-01-05T03:00:00+00:00"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].count("kind: CronJob") >= 2


@pytest.mark.parametrize("name", sorted(SERVICES))
@pytest.mark.parametrize("floor", [0, 2])
def test_every_child_validates_against_kubernetes_schemas(name: str, floor: int) -> None:
    for key, manifest in _render(SERVICES[name], floor=floor).items():
        try:
            kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{key}: {str(exc).splitlines()[0]}")


def test_probes_gate_traffic_and_protect_loading_pods() -> None:
    body = SERVICES["tts-gpu"]
    server = _server(_render(body))
    assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    startup = server["startupProbe"]
    assert startup["httpGet"]["path"] == "/ready"
    # 900 s of startup allowance before liveness may act at all.
    timeout = body["spec"]["server"]["startupTimeoutSeconds"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= timeout
    assert startup["failureThreshold"] == math.ceil(timeout / startup["periodSeconds"])
    # The pod turns Ready within a second of the server's own /ready (the kubelet's next probe).
    assert startup["periodSeconds"] <= 1
    # A restarted kubelet holds the pods not ready until its first readiness probe, up to one
    # period: a second; a server slow to answer is still given 10 s before it leaves.
    ready = server["readinessProbe"]
    assert ready["periodSeconds"] <= 1
    assert ready["periodSeconds"] * ready["failureThreshold"] >= 10


@pytest.mark.parametrize("drain", [None, 0, 60])
def test_a_leaving_pod_sleeps_its_drain_period_then_has_the_servers_graceful_timeout(
    drain: int | None,
) -> None:
    """preStop sleeps drainSeconds (the kubelet's own action: no shell in the image); the grace
    period covers that sleep, the server's graceful timeout (from the server's settings, the
    one home of the number) and the margin. 0 renders no preStop at all."""
    from emotivoice_operator.render.deployment import TERMINATION_MARGIN_SECONDS
    from emotivoice_server.settings import GRACEFUL_TIMEOUT_S

    body = copy.deepcopy(SERVICES["tts-gpu"])
    if drain is not None:
        body["spec"]["server"]["drainSeconds"] = drain
    children = _render(body)
    server, pod = _server(children), _pod(children)
    seconds = spec_schema()["properties"]["server"]["properties"]["drainSeconds"]["default"]
    seconds = seconds if drain is None else drain
    if seconds:
        assert server["lifecycle"] == {"preStop": {"sleep": {"seconds": seconds}}}
    else:
        assert "lifecycle" not in server
    assert pod["terminationGracePeriodSeconds"] == (
        seconds + GRACEFUL_TIMEOUT_S + TERMINATION_MARGIN_SECONDS
    )
    assert drain is not None or pod["terminationGracePeriodSeconds"] == 35  # 5 + 20 + 10
    kubernetes_validate.validate(_workload(children), K8S_VERSION, strict=True)


def test_rendering_imports_neither_torch_nor_the_http_server() -> None:
    """The operator's image has no torch, gunicorn or flask; render reads the server's graceful
    timeout from emotivoice_server.settings, and the pre-warm job (same image) primes through
    emotivoice_server.prime: both must stay importable there."""
    code = (
        "import sys, emotivoice_operator.render.deployment, emotivoice_operator.main\n"
        "import emotivoice_operator.prewarm_job\n"
        "print(sorted(m for m in ('torch', 'gunicorn', 'flask', 'numpy') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "[]", proc.stdout


def test_gpu_limits_and_toleration_only_when_asked() -> None:
    gpu = _render(SERVICES["tts-gpu"])
    assert _server(gpu)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pod = _pod(gpu)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert _arg(_server(gpu)["args"], "--precision") == "fp16"
    assert _arg(_server(gpu)["args"], "--device") == "cuda"
    cpu = _render(SERVICES["tts-minimal"])
    assert "nvidia.com/gpu" not in _server(cpu)["resources"]["limits"]
    assert _arg(_server(cpu)["args"], "--precision") == "fp32"  # auto on CPU
    assert _arg(_server(cpu)["args"], "--load-format") == "converted"


def test_released_load_format_skips_the_conversion() -> None:
    body = yaml.safe_load(yaml.safe_dump(SERVICES["tts-minimal"]))
    body["spec"]["model"]["loadFormat"] = "released"
    children = _render(body)
    assert "--after-verify" not in _init(children)["args"]
    assert _arg(_server(children)["args"], "--load-format") == "released"


# The full-size model on CPU (fp32) after two rounds of 4096-character inputs
# (docs/reference/server-api.md, "Memory"; measured with bench/load_bench.py's long inputs).
FULL_MODEL_RSS_AFTER_LONG_INPUTS = 3046 * 2**20


def test_the_default_memory_request_holds_a_full_model_after_the_longest_inputs() -> None:
    from kubernetes.utils import parse_quantity

    resources = _server(_render(SERVICES["tts-minimal"]))["resources"]
    assert parse_quantity(resources["requests"]["memory"]) >= FULL_MODEL_RSS_AFTER_LONG_INPUTS
    assert parse_quantity(resources["limits"]["memory"]) > parse_quantity(
        resources["requests"]["memory"]
    )


def test_unset_warmup_leaves_the_servers_defaults_and_set_fields_win() -> None:
    """The warm-up defaults live in the server alone: the operator passes only what is set,
    and the server (and the pre-warm job's priming) reads the same plan."""
    from emotivoice_server.warmup import WarmupSpec, parse_warmup

    def warmup(children: dict[str, Any]) -> str:
        env = {e["name"]: e.get("value") for e in _server(children)["env"]}
        return env["EMOTIVOICE_WARMUP"]

    body = yaml.safe_load(yaml.safe_dump(SERVICES["tts-minimal"]))
    body["spec"].setdefault("server", {}).pop("warmup", None)
    assert parse_warmup(warmup(_render(body))) == WarmupSpec()
    body["spec"]["server"]["warmup"] = {"phrases": ["Only this."], "voices": ["8051"]}
    parsed = parse_warmup(warmup(_render(body)))
    assert parsed.phrases == ("Only this.",)
    assert parsed.voices == ("8051",)
    assert parsed.prompts == WarmupSpec().prompts


def test_init_container_fetches_into_the_cache_volume() -> None:
    children = _render(SERVICES["tts-minimal"])
    init = _init(children)
    args = init["args"]
    assert init["command"] == ["emotivoice-fetch"]
    assert _arg(args, "--source") == "s3://models/emotivoice/v1"
    assert _arg(args, "--endpoint-url") == "http://minio.minio.svc:9000"
    assert "--path-style" in args  # implied by the endpoint
    assert _arg(args, "--manifest") == "SHA256SUMS"
    # The released weights are converted once, for the precision the server loads (fp32 on CPU).
    assert _arg(args, "--after-verify") == "emotivoice_tts.convert:convert_fp32"
    dest = _arg(args, "--dest")
    assert dest == names.model_dir("s3://models/emotivoice/v1")
    assert _arg(_server(children)["args"], "--model-dir") == dest
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in init["env"] if "valueFrom" in e
    }
    assert secret_refs["AWS_ACCESS_KEY_ID"] == {
        "name": "minio-credentials",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert "AWS_SECRET_ACCESS_KEY" in secret_refs
    # Credentials never travel as arguments.
    assert not any("minioadmin" in a for a in args)
    # The default scope (PerReplica): each replica's own claim, from the claim template.
    (template,) = _workload(children)["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "model-cache"
    assert {m["name"] for m in init["volumeMounts"]} >= {"model-cache"}


@pytest.mark.parametrize(
    "same",
    ["s3://models/emotivoice/v1/", "s3://models//emotivoice/v1//", "s3://models/emotivoice/v1"],
)
def test_one_source_spelled_two_ways_shares_one_cache_directory(same: str) -> None:
    """The fetch step reads ``s3://b/p`` and ``s3://b/p/`` as the same objects: one directory,
    not a second download. The slash-less spelling keeps the directory it always had."""
    canonical = "s3://models/emotivoice/v1"
    assert parse_source_uri(same) == parse_source_uri(canonical)
    assert names.model_dir(same) == names.model_dir(canonical)
    legacy = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert names.model_dir(canonical) == f"{names.MODEL_MOUNT}/{legacy}"
    assert names.model_dir("s3://models/emotivoice/v1-old") != names.model_dir(canonical)
    assert names.model_dir("s3://models") == names.model_dir("s3://models/")


def test_checksums_from_the_spec_reach_the_fetch_step() -> None:
    body = yaml.safe_load(yaml.safe_dump(SERVICES["tts-minimal"]))
    body["spec"]["model"]["source"]["checksums"] = {"b.bin": "b" * 64, "a.bin": "a" * 64}
    env = {e["name"]: e.get("value") for e in _init(_render(body))["env"]}
    assert yaml.safe_load(env["EMOTIVOICE_EXPECTED_SHA256"]) == {
        "a.bin": "a" * 64,
        "b.bin": "b" * 64,
    }


def test_cache_durability_reaches_the_fetch_step_only_when_set() -> None:
    assert "--durability" not in _init(_render(SERVICES["tts-minimal"]))["args"]
    body = yaml.safe_load(yaml.safe_dump(SERVICES["tts-minimal"]))
    body["spec"]["model"].setdefault("cache", {})["durability"] = "fsync"
    assert _arg(_init(_render(body))["args"], "--durability") == "fsync"


def test_cache_durability_choices_are_the_fetch_steps() -> None:
    """The CRD offers exactly the modes `emotivoice-fetch --durability` accepts (the fetch step
    owns them and their default; the operator only passes the user's choice on)."""
    from emotivoice_fetch.durability import Durability

    cache = spec_schema()["properties"]["model"]["properties"]["cache"]["properties"]
    assert "default" not in cache["durability"]
    assert set(cache["durability"]["enum"]) == {d.value for d in Durability}


def _cron_fields(schedule: str) -> tuple[str, str, set[int]]:
    minute, hour, dom, month, dow = schedule.split()
    assert (dom, month) == ("*", "*")
    days: set[int] = set()
    for part in dow.split(","):
        if part == "*":
            days |= set(range(7))
        elif "-" in part:
            lo, hi = map(int, part.split("-"))
            days |= set(range(lo, hi + 1))
        else:
            days.add(int(part) % 7)
    return minute, hour, days


def test_cronjobs_fire_lead_time_before_each_window_in_its_zone() -> None:
    children = _render(SERVICES["tts-gpu"])
    morning = children["CronJob/tts-warm-morning"]["spec"]
    assert morning["timeZone"] == "Asia/Shanghai"
    assert _cron_fields(morning["schedule"]) == ("45", "8", {1, 2, 3, 4, 5})  # 09:00 - 15m
    evening = children["CronJob/tts-warm-evening"]["spec"]
    assert _cron_fields(evening["schedule"]) == ("50", "18", set(range(7)))  # 19:00 - default 10m
    assert morning["concurrencyPolicy"] == "Forbid"
    job = morning["jobTemplate"]["spec"]["template"]["spec"]
    assert job["serviceAccountName"] == "tts-warm"
    assert _arg(job["containers"][0]["args"], "--window") == "morning"


def test_prewarm_jobs_run_the_small_image_not_the_servers() -> None:
    spec = parse_spec(SERVICES["tts-gpu"]["spec"])
    assert spec.warm_pool
    windows = tuple(win.parse_windows(spec.warm_pool))
    small = RenderContext(
        OWNER, 1, "emotivoice/server:test", prewarm_image="evo/operator:test", windows=windows
    )
    # Without a pre-warm image, the server's (here the spec's own).
    fallback = RenderContext(OWNER, 1, "srv:x", windows=windows)
    for ctx, image in ((small, "evo/operator:test"), (fallback, spec.server.image)):
        jobs = [m for m in render(spec, ctx) if m["kind"] == "CronJob"]
        assert jobs
        for job in jobs:
            pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            assert [c["image"] for c in pod["containers"]] == [image]


def test_lead_time_carries_across_midnight_and_the_week() -> None:
    body = yaml.safe_load(yaml.safe_dump(SERVICES["tts-gpu"]))
    body["spec"]["warmPool"]["windows"] = [
        {
            "name": "early",
            "days": ["Mon"],
            "start": "00:10",
            "end": "06:00",
            "leadTime": "30m",
            "replicas": 2,
        }
    ]
    schedule = _render(body)["CronJob/tts-warm-early"]["spec"]["schedule"]
    assert _cron_fields(schedule) == ("40", "23", {0})  # Sunday 23:40


def test_hpa_floor_follows_the_windows() -> None:
    body = SERVICES["tts-gpu"]
    # Monday 2026-01-05 10:00 in Shanghai = 02:00 UTC: inside the morning window (3 replicas).
    inside = _render(body, at=datetime(2026, 1, 5, 2, 0, tzinfo=UTC))["HorizontalPodAutoscaler/tts"]
    assert inside["spec"]["minReplicas"] == 3
    assert inside["spec"]["maxReplicas"] == 6
    # 15:00 in Shanghai: between windows, replicas.min holds.
    outside = _render(body, at=datetime(2026, 1, 5, 7, 0, tzinfo=UTC))[
        "HorizontalPodAutoscaler/tts"
    ]
    assert outside["spec"]["minReplicas"] == 1
    assert outside["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_scale_to_zero_drops_the_hpa_and_zeroes_the_workload() -> None:
    body = SERVICES["tts-office-hours"]
    # Sunday 12:00 New York: no window.
    night = _render(body, at=datetime(2026, 1, 4, 17, 0, tzinfo=UTC))
    assert "HorizontalPodAutoscaler/tts" not in night
    assert _workload(night)["spec"]["replicas"] == 0
    # Monday 10:00 New York: the office window holds 1 and the HPA owns the replica count.
    day = _render(body, at=datetime(2026, 1, 5, 15, 0, tzinfo=UTC))
    assert day["HorizontalPodAutoscaler/tts"]["spec"]["minReplicas"] == 1
    assert "replicas" not in _workload(day)["spec"]


def test_owner_references_and_labels_on_every_child() -> None:
    for name, body in SERVICES.items():
        retained = body["spec"]["model"].get("cache", {}).get("retainOnDelete", False)
        for key, manifest in _render(body).items():
            meta = manifest["metadata"]
            assert meta["labels"]["app.kubernetes.io/instance"] == "tts", key
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "emotivoice-operator", key
            if key == "PersistentVolumeClaim/tts-model" and retained:
                assert "ownerReferences" not in meta, (
                    f"{name}: a retained cache must not be collected"
                )
                continue
            (ref,) = meta["ownerReferences"]
            assert ref["uid"] == OWNER.uid and ref["controller"] is True, key
            assert ref["kind"] == "EmotiVoiceService", key


def test_prewarm_role_is_least_privilege() -> None:
    role = _render(SERVICES["tts-gpu"])["Role/tts-warm"]
    for rule in role["rules"]:
        assert rule["resourceNames"] == ["tts"]
        assert set(rule["verbs"]) <= {"get", "patch"}
    patchable = [r["resources"] for r in role["rules"] if "patch" in r["verbs"]]
    assert patchable == [["emotivoiceservices/status"]]


def test_non_root_everywhere() -> None:
    children = _render(SERVICES["tts-gpu"])
    pod = _pod(children)
    assert pod["securityContext"]["runAsNonRoot"] is True
    for c in pod["containers"] + pod["initContainers"]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True


# -- issue 16: what the kubelet and the pods may do with what we render ------------------------

SECRET_ENV = {"AWS_SECRET_ACCESS_KEY": "the-secret-key", "AWS_ACCESS_KEY_ID": "the-key-id"}


def _containers(children: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for manifest in children.values():
        if manifest["kind"] in ("Deployment", "StatefulSet"):
            pod = manifest["spec"]["template"]["spec"]
        elif manifest["kind"] == "CronJob":
            pod = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        else:
            continue
        out += pod.get("initContainers", []) + pod["containers"]
    return out


def test_kubelet_expansion_cannot_reach_secrets_through_spec_values() -> None:
    """A ``$(VAR)`` in any spec value reaches the process as written, not as the Secret."""
    from tests.support.kubelet_expansion import expand

    body = yaml.safe_load(yaml.safe_dump(SERVICES["tts-gpu"]))
    source = body["spec"]["model"]["source"]
    source["uri"] = "s3://models/$(AWS_SECRET_ACCESS_KEY)"
    source["checksums"] = {"$(AWS_ACCESS_KEY_ID)": "a" * 64}
    body["spec"]["server"]["warmup"] = {"phrases": ["cost $$5 $(AWS_SECRET_ACCESS_KEY) $"]}
    children = _render(body)
    init = _init(children)
    assert expand(_arg(init["args"], "--source") or "", SECRET_ENV) == source["uri"]
    for container in _containers(children):
        env = {**SECRET_ENV, "HOME": "/tmp"}
        for value in [*container.get("args", []), *(e["value"] for e in container.get("env", []) if "value" in e)]:  # fmt: skip
            assert "the-secret" not in expand(value, env), (container["name"], value)
            assert "the-key-id" not in expand(value, env), (container["name"], value)
    warmup = next(e["value"] for e in _server(children)["env"] if e["name"] == "EMOTIVOICE_WARMUP")
    assert (
        "cost $$5 $(AWS_SECRET_ACCESS_KEY) $"
        in yaml.safe_load(expand(warmup, SECRET_ENV))["phrases"]
    )


def test_values_without_a_dollar_are_rendered_unchanged() -> None:
    from tests.support.kubelet_expansion import expand

    children = _render(SERVICES["tts-minimal"])
    for container in _containers(children):
        for value in container.get("args", []):
            assert expand(value, SECRET_ENV) == value


def test_user_env_objects_keep_their_kubernetes_meaning() -> None:
    """spec.server.env holds core/v1 EnvVars: $(VAR) there is the user's, as in a pod spec."""
    body = yaml.safe_load(yaml.safe_dump(SERVICES["tts-minimal"]))
    body["spec"].setdefault("server", {})["env"] = [{"name": "GREETING", "value": "$(HOME)/x"}]
    env = {e["name"]: e.get("value") for e in _server(_render(body))["env"]}
    assert env["GREETING"] == "$(HOME)/x"


def test_server_pods_have_no_token_and_read_the_cache_read_only() -> None:
    children = _render(SERVICES["tts-minimal"])
    pod = _pod(children)
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    mounts = {m["name"]: m for m in _server(children)["volumeMounts"]}
    assert mounts["model-cache"]["readOnly"] is True
    # Only the fetch step writes the cache.
    fetch_mounts = {m["name"]: m for m in _init(children)["volumeMounts"]}
    assert not fetch_mounts["model-cache"].get("readOnly", False)
    # Nothing the server computes from users' prompts is written: the embeddings stay in memory.
    assert "--no-persist-embeddings" in _server(children)["args"]
    # The pre-warm job keeps its token: it patches the resource's status.
    cron = _render(SERVICES["tts-gpu"])["CronJob/tts-warm-morning"]
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_pod["serviceAccountName"] == "tts-warm"
    assert "automountServiceAccountToken" not in job_pod


def test_the_default_server_image_is_the_variant_the_pod_needs() -> None:
    """GPU pods get the CUDA variant, CPU pods the CPU one (GBs smaller to pull); the spec's own
    image wins; without a CPU variant configured, the CUDA one serves CPU pods too."""
    gpu = SERVICES["tts-gpu"]["spec"]
    cpu = SERVICES["tts-minimal"]["spec"]
    ctx = RenderContext(OWNER, 1, "evs/server:1", default_server_cpu_image="evs/server:1-cpu")
    unset_gpu = yaml.safe_load(yaml.safe_dump(gpu))
    unset_gpu["server"].pop("image")

    def images(raw: dict[str, Any], context: RenderContext) -> set[str]:
        workloads = ("Deployment", "StatefulSet")
        [workload] = [m for m in render(parse_spec(raw), context) if m["kind"] in workloads]
        pod = workload["spec"]["template"]["spec"]
        return {c["image"] for c in pod["initContainers"] + pod["containers"]}

    assert images(cpu, ctx) == {"evs/server:1-cpu"}
    assert images(unset_gpu, ctx) == {"evs/server:1"}
    assert images(gpu, ctx) == {gpu["server"]["image"]}
    assert images(cpu, RenderContext(OWNER, 1, "evs/server:1")) == {"evs/server:1"}


# -- issue 17: cache scopes --------------------------------------------------------------------


def _with_cache(name: str, **cache: Any) -> dict[str, Any]:
    body = copy.deepcopy(SERVICES[name])
    body["spec"]["model"]["cache"] = {**body["spec"]["model"].get("cache", {}), **cache}
    return body


@pytest.mark.parametrize("scope", ["PerReplica", "Shared", "Ephemeral"])
@pytest.mark.parametrize("floor", [0, 2])
def test_every_scope_renders_valid_kubernetes_objects(scope: str, floor: int) -> None:
    body = _with_cache("tts-gpu", scope=scope, retainOnDelete=scope != "Ephemeral")
    for manifest in _render(body, floor=floor).values():
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_per_replica_is_a_statefulset_whose_claims_outlive_scale_down() -> None:
    children = _render(SERVICES["tts-minimal"])  # no scope in the example: the default
    workload = _workload(children)
    assert workload["kind"] == "StatefulSet" and workload["metadata"]["name"] == "tts"
    spec = workload["spec"]
    # A window's replicas start together, not one after another is Ready.
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenScaled": "Retain",
        "whenDeleted": "Delete",
    }
    (template,) = spec["volumeClaimTemplates"]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert template["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "tts"
    # No shared claim, and the pod's cache volume comes from the template only.
    assert "PersistentVolumeClaim/tts-model" not in children
    assert "model-cache" not in {v["name"] for v in _pod(children)["volumes"]}
    assert children["HorizontalPodAutoscaler/tts"]["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "tts",
    }
    # The claim the StatefulSet controller makes for ordinal 3, by the one name rule.
    assert names.replica_cache("tts", 3) == "model-cache-tts-3"
    assert names.replica_cache_ordinal("tts", "model-cache-tts-3") == 3
    for other in ("model-cache-tts-x", "model-cache-tts-03", "model-cache-tts2-1", "tts-model"):
        assert names.replica_cache_ordinal("tts", other) is None, other


def test_retain_on_delete_keeps_per_replica_claims_past_the_resource() -> None:
    spec = _workload(_render(_with_cache("tts-minimal", retainOnDelete=True)))["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_shared_is_todays_deployment_on_one_claim() -> None:
    children = _render(SERVICES["tts-gpu"])  # the example asks for Shared on RWX storage
    workload = _workload(children)
    assert workload["kind"] == "Deployment"
    assert workload["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    volume = next(v for v in _pod(children)["volumes"] if v["name"] == "model-cache")
    assert volume["persistentVolumeClaim"]["claimName"] == "tts-model"
    claim = children["PersistentVolumeClaim/tts-model"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert children["HorizontalPodAutoscaler/tts"]["spec"]["scaleTargetRef"]["kind"] == "Deployment"


def test_unset_scope_stays_shared_where_the_old_claim_exists() -> None:
    children = _render(SERVICES["tts-minimal"], shared_claim_exists=True)
    assert _workload(children)["kind"] == "Deployment"
    assert "PersistentVolumeClaim/tts-model" in children


def test_shared_read_write_once_pod_is_replaced_in_place_not_surged() -> None:
    """A surge pod could never mount the claim its predecessor holds (the rollout would hang)."""
    body = _with_cache("tts-minimal", scope="Shared", accessMode="ReadWriteOncePod")
    body["spec"]["replicas"] = {"min": 1, "max": 1}
    assert _workload(_render(body))["spec"]["strategy"] == {"type": "Recreate"}


def test_ephemeral_is_a_bounded_empty_dir_and_no_claim() -> None:
    children = _render(_with_cache("tts-gpu", scope="Ephemeral", retainOnDelete=False))
    assert _workload(children)["kind"] == "Deployment"
    assert not [k for k in children if k.startswith("PersistentVolumeClaim/")]
    volume = next(v for v in _pod(children)["volumes"] if v["name"] == "model-cache")
    assert volume == {"name": "model-cache", "emptyDir": {"sizeLimit": "20Gi"}}


def _with_windows(*windows: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(SERVICES["tts-gpu"])
    body["spec"]["warmPool"]["windows"] = list(windows)
    return body


def test_a_windows_error_names_its_index_on_the_one_path() -> None:
    """desired_state parses the windows once and hands them to the renderer: an inexpressible
    pre-warm is named where the spec wrote it, whatever builds the CronJob."""
    body = _with_windows(
        {"name": "fine", "start": "09:00", "end": "10:00", "replicas": 2},
        {"name": "month", "cron": "0 0 1 * *", "duration": "1h", "leadTime": "10m", "replicas": 2},
    )
    at = datetime(2026, 1, 5, 3, tzinfo=UTC)
    with pytest.raises(SpecError) as err:
        desired_state(body["spec"], OWNER, at, {}, OperatorSettings())
    assert err.value.field == "warmPool.windows[1].cron"


def test_the_cronjobs_are_the_windows_desired_state_parsed_with_the_learned_lead() -> None:
    body = _with_windows(
        {"name": "peak", "start": "09:00", "end": "12:00", "leadTime": "auto", "replicas": 2},
        {"name": "fixed", "start": "18:00", "end": "19:00", "leadTime": "15m", "replicas": 2},
    )
    at = datetime(2026, 1, 5, 3, tzinfo=UTC)
    # Ten cold starts of 110 s + the default 1m margin: a learned lead of 2m50s; the CronJob
    # fires at the whole minute before it (3m), its job waits the other 10 s.
    desired = desired_state(body["spec"], OWNER, at, {}, OperatorSettings(), [110.0] * 10)
    assert desired.lead and desired.lead.lead == timedelta(seconds=170)
    jobs = {m["metadata"]["name"]: m for m in desired.manifests if m["kind"] == "CronJob"}
    assert [w.name for w in desired.windows] == ["peak", "fixed"]
    assert list(jobs) == ["tts-warm-peak", "tts-warm-fixed"]
    for window in desired.windows:
        assert jobs[f"tts-warm-{window.name}"]["spec"]["schedule"] == win.prewarm_cron(window)
    assert jobs["tts-warm-peak"]["spec"]["schedule"] == "57 8 * * *"
