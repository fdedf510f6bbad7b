"""Settings resolution: flags win over the environment, bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotivoice_fetch.procstat import parse_start_ticks
from emotivoice_server import settings as s
from emotivoice_server.cli import _read_warmup, main
from emotivoice_server.warmup import WarmupConfigError, WarmupSpec

MODEL = Path("/models/demo")


def resolve(env=None, **flags):
    return s.resolve(
        model_dir=MODEL, env=env or {}, warmup=WarmupSpec(), process_start=0.0, **flags
    )


def test_defaults():
    got = resolve()
    assert got.port == s.DEFAULT_PORT
    assert got.max_queue == s.DEFAULT_MAX_QUEUE
    assert got.threads == s.DEFAULT_MAX_QUEUE + 1 + s.SPARE_THREADS
    assert got.require_marker is True
    assert got.model_name == "demo"
    assert got.torch_device is None
    assert got.embedding_cache_file == Path("/models/.emotivoice-cache/demo.prompt-embeddings.pt")


def test_environment_then_flags():
    env = {s.ENV_MAX_QUEUE: "3", s.ENV_THREADS: "16"}
    assert (resolve(env).max_queue, resolve(env).threads) == (3, 16)
    assert resolve(env, max_queue=5, threads=7).threads == 7
    assert resolve(env, max_queue=5).max_queue == 5
    # threads follow the queue when only the queue is set
    assert resolve({s.ENV_MAX_QUEUE: "2"}).threads == 2 + 1 + s.SPARE_THREADS


@pytest.mark.parametrize(
    ("env", "flags", "fragment"),
    [
        ({s.ENV_MAX_QUEUE: "many"}, {}, "EMOTIVOICE_MAX_QUEUE: expected an integer"),
        ({s.ENV_MAX_QUEUE: "-1"}, {}, "EMOTIVOICE_MAX_QUEUE: must be at least 0"),
        ({s.ENV_THREADS: "0"}, {}, "EMOTIVOICE_THREADS: must be at least 1"),
        ({}, {"precision": "int8"}, "--precision"),
        ({}, {"load_format": "onnx"}, "--load-format"),
        ({}, {"device": "tpu"}, "--device"),
        ({}, {"port": 70000}, "--port"),
    ],
)
def test_bad_values_name_their_source(env, flags, fragment):
    with pytest.raises(s.SettingsError) as info:
        resolve(env, **flags)
    assert fragment in str(info.value)


def test_persistence_can_be_moved_or_disabled(tmp_path):
    assert resolve(embedding_cache_file=tmp_path / "x.pt").embedding_cache_file == tmp_path / "x.pt"
    assert resolve(persist_embeddings=False).embedding_cache_file is None


def test_warmup_file_overrides_environment(tmp_path):
    path = tmp_path / "warmup.json"
    path.write_text('{"phrases": ["From file."]}')
    env = {"EMOTIVOICE_WARMUP": '{"phrases": ["From env."]}'}
    assert _read_warmup(path, env).phrases == ("From file.",)
    assert _read_warmup(None, env).phrases == ("From env.",)
    with pytest.raises(WarmupConfigError, match="--warmup-file"):
        _read_warmup(tmp_path / "absent.json", env)


def test_cli_refuses_bad_environment_before_starting(capsys):
    code = main(["--model-dir", "/nonexistent"], env={s.ENV_MAX_QUEUE: "x"})
    assert code == 2
    assert "EMOTIVOICE_MAX_QUEUE" in capsys.readouterr().err


def test_cli_refuses_bad_warmup_json(capsys):
    code = main(["prime", "--url", "http://127.0.0.1:9"], env={"EMOTIVOICE_WARMUP": "{"})
    assert code == 2
    assert "EMOTIVOICE_WARMUP" in capsys.readouterr().err


def test_proc_stat_start_field_survives_odd_command_names():
    fields = " ".join(str(n) for n in range(3, 30))
    line = f"123 (we ird) (name)) {fields}"
    assert parse_start_ticks(line) == 22


def test_torch_threads_from_flag_or_environment():
    assert resolve().torch_threads == 0  # auto
    assert resolve({s.ENV_TORCH_THREADS: "3"}).torch_threads == 3
    assert resolve({s.ENV_TORCH_THREADS: "3"}, torch_threads=1).torch_threads == 1


def test_cpu_budget_follows_the_cgroup_quota(tmp_path):
    from emotivoice_server.cpus import cpu_budget, parse_cpu_max

    assert parse_cpu_max("max 100000") is None
    assert parse_cpu_max("150000 100000") == 1.5
    quota = tmp_path / "cpu.max"
    quota.write_text("50000 100000\n")
    assert cpu_budget(quota) == 1
    quota.write_text("max 100000\n")
    assert cpu_budget(quota) >= 1
    assert cpu_budget(tmp_path / "absent") >= 1
