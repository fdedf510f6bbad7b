"""GPU check: every precision of the CUDA path measured in one run, with CPU fp32 beside it.

Nothing of the CUDA path had ever run when this was written (issue 21), and GPU time is scarce,
so this is one prepared script that a bare GPU machine runs once (`make gpu-check`) and that
answers everything in one table, each column measured in a fresh process so that allocator,
CUDA context and kernel caches are what a server start sees:

- `cuda fp32`, `cuda fp16`, `cuda bf16`, and `cpu fp32` for reference (`--device cpu`: the CPU
  precisions instead, fp32 and bf16, so the same table can be checked on a machine without GPU);
- per column, in a worker process: `load_synthesizer` time, first request and steady state for a
  short and a long input (each request runs BERT on prompt and text, then the generator), the
  real-time factor (seconds of compute per second of audio) of both, peak GPU memory as PyTorch
  counts it (`max_memory_allocated`, `max_memory_reserved`) and as the driver does (nvidia-smi:
  the process's own line, which includes the CUDA context; else the device's used memory);
- per column, the real server: `emotivoice-server` started on 127.0.0.1, `/ready`'s
  `ready_after_s` (process start -> ready, warm-up included), its first request after ready
  and the steady state over HTTP, and its `emotivoice_gpu_memory_bytes` metric;
- fp16/bf16 against fp32 on the same device and inputs: max |difference| of the waveforms and of
  the integer durations. Durations decide the audio length; when they differ the check explains
  each difference from the fp32 run's unrounded duration (how close it was to a rounding
  boundary) and compares the waveform only up to the first differing token;
- `--upstream DIR` (an EmotiVoice checkout): EmotiVoice's own modules at fp32 on the same device,
  same inputs, side by side (where they run: an error is reported in its column, not raised).

The whole run is bounded by `--budget-s` (default 450 s, under the 8 minutes a GPU loan allows);
what would start after it is skipped and says so. Results go to `.bench/gpu-check.json`.

    python bench/gpu_check.py [--device cuda|cpu] [--model-dir .models/full] [--upstream DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

SPEAKER = "8051"
PROMPT = "Happy"
# Words of the random test model's lexicon (testmodel.LEXICON) plus Chinese, which the pinyin
# frontend covers: about a second of audio, and about fifteen.
SHORT_TEXT = "Hello, good day."
LONG_TEXT = (
    "Good morning, this is a test of the emotional speech engine, and today the weather is "
    "very nice, how are you, I can say hello to the world with a happy voice, 今天天气真好, "
    "this text is a very good test of the multi voice controlled speech engine for you, and "
    "it is a nice day to test the speech of the world."
)
DEFAULT_BUDGET_S = 450
MIB = 1024 * 1024


@dataclass(frozen=True)
class Column:
    """One measured configuration: a device, a precision, and whose modules (ours/upstream)."""

    device: str
    precision: str
    modules: str = "ours"

    @property
    def name(self) -> str:
        prefix = "upstream " if self.modules == "upstream" else ""
        return f"{prefix}{self.device} {self.precision}"

    @property
    def key(self) -> str:
        return self.name.replace(" ", "-")


# ------------------------------------------------------------------------------ helpers


def nvidia_smi_process_mib(pid: int) -> float | None:
    """The driver's view of one process's GPU memory (CUDA context included), or None when
    nvidia-smi is absent or does not list the pid (inside a container it may show host pids)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            return float(parts[1])
    return None


def nvidia_smi_device_used_mib() -> float | None:
    """Used memory of GPU 0 as the driver reports it (all processes), or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None
    return float(out) if out.replace(".", "", 1).isdigit() else None


# ------------------------------------------------------------------------------ worker side


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def worker(column: Column, model_dir: Path, dump: Path, steady: int, upstream: Path | None) -> dict:
    """In a fresh process: load, first and steady requests, memory; arrays go to `dump` (npz)."""
    began = time.perf_counter()
    import numpy as np
    import torch

    result: dict[str, Any] = {"column": column.name, "import_s": time.perf_counter() - began}
    cuda = column.device == "cuda"
    if cuda:
        t = time.perf_counter()
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        result["cuda_init_s"] = time.perf_counter() - t
        result["gpu_name"] = torch.cuda.get_device_name(0)
        result["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
        result["matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    if column.modules == "upstream":
        request, load_s = _upstream_request(model_dir, column.device, upstream)
    else:
        request, load_s, phases = _our_request(model_dir, column)
        result["load_phases"] = {k: round(v, 4) for k, v in phases.items()}
    result["load_s"] = load_s
    if cuda:
        result["gpu_max_allocated_after_load_mib"] = torch.cuda.max_memory_allocated() / MIB

    arrays: dict[str, Any] = {}
    for label, text in (("short", SHORT_TEXT), ("long", LONG_TEXT)):
        seconds, wav, durations, log_durations = request(text)
        result[f"first_{label}_s"] = seconds
        result[f"audio_{label}_s"] = len(wav) / 16000
        arrays[f"wav_{label}"] = wav
        if durations is not None:
            arrays[f"dur_{label}"] = durations
        if log_durations is not None:
            arrays[f"logdur_{label}"] = log_durations
    # Each length in a block of its own: alternating lengths would make every request meet
    # a shape the one before it did not have (allocator and oneDNN per-shape set-up on CPU).
    times: dict[str, list[float]] = {}
    for label, text in (("short", SHORT_TEXT), ("long", LONG_TEXT)):
        times[label] = [request(text)[0] for _ in range(steady)]
        result[f"steady_{label}_all_s"] = [round(x, 4) for x in times[label]]
    for label in ("short", "long"):
        result[f"steady_{label}_s"] = _median(times[label])
        result[f"rtf_{label}"] = result[f"steady_{label}_s"] / result[f"audio_{label}_s"]
    result["first_over_steady_short"] = result["first_short_s"] / result["steady_short_s"]
    if cuda:
        result["gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
        result["gpu_max_reserved_mib"] = torch.cuda.max_memory_reserved() / MIB
        free, total = torch.cuda.mem_get_info()
        result["gpu_device_used_at_end_mib"] = (total - free) / MIB
        result["gpu_driver_process_mib"] = nvidia_smi_process_mib(os.getpid())
    np.savez(dump, **arrays)
    return result


def _our_request(model_dir: Path, column: Column) -> tuple[Any, float, dict[str, float]]:
    """Loads our synthesizer; returns a request function (seconds, wav, durations, log-durations)."""
    import torch

    from emotivoice_tts import load_synthesizer

    t = time.perf_counter()
    synth = load_synthesizer(model_dir, precision=column.precision, device=column.device)
    if column.device == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t
    captured: list[torch.Tensor] = []
    # The predictor's log-durations before rounding: what explains a duration that differs.
    synth.generator.am.duration_predictor.register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach().float().cpu())
    )

    def request(text: str) -> tuple[float, Any, Any, Any]:
        captured.clear()
        t = time.perf_counter()
        out = synth.run(text, SPEAKER, PROMPT)
        wav = out.wav[0, 0].float().cpu().numpy()  # the copy synchronizes with the device
        seconds = time.perf_counter() - t
        return seconds, wav, out.durations[0].cpu().numpy(), captured[-1][0].numpy()

    return request, load_s, synth.load_timings


def _upstream_request(model_dir: Path, device: str, upstream: Path | None) -> tuple[Any, float]:
    """EmotiVoice's own modules (bench/model_bench.py builds them), moved to `device`."""
    import torch

    sys.path.insert(0, str(REPO / "bench"))
    import model_bench
    from transformers import AutoTokenizer

    from emotivoice_tts.frontend import build_frontend
    from emotivoice_tts.layout import ModelLayout
    from emotivoice_tts.spec import ModelSpec

    t = time.perf_counter()
    style, generator = model_bench._load_released("upstream", model_dir, str(upstream))
    style.to(device).eval()
    generator.to(device).eval()
    if device == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t
    layout = ModelLayout.discover(model_dir)
    spec = ModelSpec.read(layout)
    tokenizer = AutoTokenizer.from_pretrained(str(layout.bert_dir))
    frontend = build_frontend(layout.lexicon)
    index = {tok: i for i, tok in enumerate(spec.tokens)}
    speaker = torch.tensor([spec.speakers.index(SPEAKER)], device=device)

    def embed(text: str) -> torch.Tensor:
        enc = tokenizer([text], return_tensors="pt").to(device)
        out = style(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
        return out["pooled_output"] if isinstance(out, dict) else out

    @torch.inference_mode()
    def request(text: str) -> tuple[float, Any, Any, Any]:
        t = time.perf_counter()
        ids = [index[p] for p in frontend(text)]
        tokens = torch.tensor([ids], device=device)
        lengths = torch.tensor([len(ids)], device=device)
        out = generator(tokens, lengths, speaker, embed(PROMPT), embed(text))
        wav = out["wav_predictions"][0, 0].float().cpu().numpy()
        seconds = time.perf_counter() - t
        durations = next((out[k] for k in ("d_outs", "ds", "durations") if k in out), None)
        if durations is not None:
            durations = durations[0].cpu().numpy()
        return seconds, wav, durations, None

    return request, load_s


# ------------------------------------------------------------------------------ driver side


class Budget:
    """The run's deadline: every step asks before it starts, so the whole run stays bounded."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def run_worker(
    column: Column, args: argparse.Namespace, dump: Path, budget: Budget
) -> dict[str, Any]:
    """One worker process; its last stdout line is the JSON result. Errors become the result."""
    timeout = budget.left()
    if timeout < 20:
        return {"error": "skipped: the run's time budget is spent"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", column.key]
    cmd += ["--model-dir", str(args.model_dir), "--dump", str(dump), "--steady", str(args.steady)]
    if args.upstream:
        cmd += ["--upstream", str(args.upstream)]
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "server"), env.get("PYTHONPATH")) if p
    )
    before = nvidia_smi_device_used_mib() if column.device == "cuda" else None
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:  # subprocess.run kills the child it started
        return {"error": f"worker ran past the budget ({timeout:.0f} s)"}
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {proc.returncode}", "stderr": proc.stderr}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if before is not None:
        result["gpu_device_used_before_mib"] = before
    return result


def run_server(column: Column, args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    """The real `emotivoice-server` on 127.0.0.1: process start -> ready, first and steady
    requests over HTTP, its GPU-memory metric; stopped by its pid (process group) at the end."""
    sys.path.insert(0, str(REPO))
    import requests

    from tests.server.server_process import start_server

    timeout = budget.left()
    if timeout < 30:
        return {"error": "skipped: the run's time budget is spent"}
    log = args.out.parent / "gpu-check-logs" / f"server-{column.key}.log"
    server = start_server(
        args.model_dir,
        log,
        "--precision",
        column.precision,
        "--device",
        column.device,
        "--no-require-marker",
        "--no-persist-embeddings",
        env={"TRANSFORMERS_VERBOSITY": "error"},
    )
    result: dict[str, Any] = {}
    try:
        body = server.wait_ready(timeout, poll=0.05)
        if body.get("phase") == "failed":
            return {"error": f"server failed: {body.get('error')}", "log": str(log)}
        result["ready_after_s"] = body.get("ready_after_s")
        result["phase_seconds"] = body.get("phase_seconds")

        def post(text: str) -> float:
            t = time.perf_counter()
            response = requests.post(
                f"{server.url}/v1/audio/speech",
                json={"input": text, "prompt": PROMPT, "voice": SPEAKER, "response_format": "wav"},
                timeout=max(10.0, budget.left()),
            )
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            return time.perf_counter() - t

        result["first_request_s"] = post(SHORT_TEXT)
        result["steady_request_s"] = _median([post(SHORT_TEXT) for _ in range(args.steady)])
        metrics = server.metrics()
        for kind in ("max_allocated", "reserved"):
            value = metrics.get(f'emotivoice_gpu_memory_bytes{{kind="{kind}"}}')
            result[f"gpu_metric_{kind}_mib"] = None if value is None else value / MIB
        if column.device == "cuda":
            result["gpu_driver_process_mib"] = nvidia_smi_process_mib(server.worker_pid())
    except (RuntimeError, TimeoutError, requests.RequestException) as exc:
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        result["log"] = str(log)
    finally:
        server.stop()
    return result


def compare(ref: dict[str, Any], other: dict[str, Any], hop: int) -> dict[str, Any]:
    """Waveforms and durations of one column against fp32 on the same device and inputs."""
    import numpy as np

    out: dict[str, Any] = {}
    for label in ("short", "long"):
        wav_r, wav_o = ref[f"wav_{label}"], other[f"wav_{label}"]
        entry: dict[str, Any] = {"samples": [len(wav_r), len(wav_o)]}
        dur_r, dur_o = ref.get(f"dur_{label}"), other.get(f"dur_{label}")
        same_durations = dur_r is not None and dur_o is not None and np.array_equal(dur_r, dur_o)
        if dur_r is not None and dur_o is not None and len(dur_r) == len(dur_o):
            diff = np.abs(dur_r.astype(np.int64) - dur_o.astype(np.int64))
            entry["durations_max_abs_diff_frames"] = int(diff.max()) if len(diff) else 0
            entry["durations_differing_tokens"] = int((diff > 0).sum())
            if not same_durations:
                entry["durations_explained"] = _explain(ref.get(f"logdur_{label}"), other, label)
                first = int(np.argmax(diff > 0))
                # Frames before the first differing token are placed identically; the Gaussian
                # upsampling blurs a token or so, so the comparison stops one token earlier.
                prefix = int(dur_r[: max(0, first - 1)].sum()) * hop
                entry["wav_compared_samples"] = prefix
                wav_r, wav_o = wav_r[:prefix], wav_o[:prefix]
        elif dur_r is None or dur_o is None:
            entry["durations_max_abs_diff_frames"] = None
        n = min(len(wav_r), len(wav_o))
        entry["wav_max_abs_diff"] = float(np.abs(wav_r[:n] - wav_o[:n]).max()) if n else None
        entry["wav_peak_fp32"] = float(np.abs(wav_r).max()) if len(wav_r) else None
        out[label] = entry
    return out


def _explain(ref_log: Any, other: dict[str, Any], label: str) -> list[dict[str, float]]:
    """For each differing token: the unrounded fp32 duration (exp(l) - 1) and this column's.

    A duration is round(exp(l) - 1); a lower precision moves l a little, so a token whose fp32
    value sat near x.5 can round the other way: one frame, explained by the two values here.
    """
    import numpy as np

    other_log = other.get(f"logdur_{label}")
    if ref_log is None or other_log is None:
        return []
    ref_frames = np.exp(ref_log.astype(np.float64)) - 1.0
    other_frames = np.exp(other_log.astype(np.float64)) - 1.0
    rows = []
    for i in np.nonzero(np.round(ref_frames) != np.round(other_frames))[0][:20]:
        rows.append(
            {
                "token": int(i),
                "fp32_unrounded": round(float(ref_frames[i]), 4),
                "other_unrounded": round(float(other_frames[i]), 4),
                "fp32_distance_to_x.5": round(abs(float(ref_frames[i]) % 1.0 - 0.5), 4),
            }
        )
    return rows


def columns_for(args: argparse.Namespace) -> list[Column]:
    if args.device == "cuda":
        cols = [Column("cuda", p) for p in ("fp32", "fp16", "bf16")] + [Column("cpu", "fp32")]
    else:
        cols = [Column("cpu", p) for p in ("fp32", "bf16")]
    if args.upstream:
        cols.append(Column(args.device, "fp32", "upstream"))
    return cols


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def _diff_cell(comparison: dict[str, Any] | None, label: str, what: str) -> str:
    if comparison is None:
        return "-"
    entry = comparison[label]
    if what == "wav":
        text = _fmt(entry.get("wav_max_abs_diff"), 5)
        return text + ("*" if "wav_compared_samples" in entry else "")
    frames = entry.get("durations_max_abs_diff_frames")
    if frames is None:
        return "-"
    return f"{frames} ({entry.get('durations_differing_tokens', 0)} tok)"


def print_table(report: dict[str, Any]) -> None:
    cols = report["columns"]
    names = list(cols)
    rows: list[tuple[str, Any]] = [
        ("load_synthesizer (s)", lambda c: _fmt(c["worker"].get("load_s"))),
        ("  of which weights to device (s)", lambda c: _fmt(_weights_s(c["worker"]))),
        ("process start -> ready, server (s)", lambda c: _fmt(c["server"].get("ready_after_s"))),
        ("server first request / steady (s)", lambda c: _pair(c["server"], "first_request_s")),
        ("first / steady request, short (s)", lambda c: _pair(c["worker"], "first_short_s")),
        ("first / steady request, long (s)", lambda c: _pair(c["worker"], "first_long_s")),
        ("RTF short (s per s of audio)", lambda c: _fmt(c["worker"].get("rtf_short"), 4)),
        ("RTF long (s per s of audio)", lambda c: _fmt(c["worker"].get("rtf_long"), 4)),
        ("audio short / long (s)", lambda c: _pair(c["worker"], "audio_short_s", "audio_long_s")),
        ("peak torch allocated (MiB)", lambda c: _fmt(c["worker"].get("gpu_max_allocated_mib"), 0)),
        ("peak torch reserved (MiB)", lambda c: _fmt(c["worker"].get("gpu_max_reserved_mib"), 0)),
        ("driver view, process (MiB)", lambda c: _fmt(c["driver_view_mib"], 0)),
        ("server metric max_allocated (MiB)", lambda c: _server_gpu(c)),
        ("server driver view (MiB)", lambda c: _fmt(c["server"].get("gpu_driver_process_mib"), 0)),
        ("max |wav diff| vs fp32, short", lambda c: _diff_cell(c["vs_fp32"], "short", "wav")),
        ("max |wav diff| vs fp32, long", lambda c: _diff_cell(c["vs_fp32"], "long", "wav")),
        ("max |duration diff| short (frames)", lambda c: _diff_cell(c["vs_fp32"], "short", "d")),
        ("max |duration diff| long (frames)", lambda c: _diff_cell(c["vs_fp32"], "long", "d")),
    ]
    width = max(16, *(len(n) + 2 for n in names))
    print(f"\n{'':<36}" + "".join(f"{n:>{width}}" for n in names))
    for label, cell in rows:
        print(f"{label:<36}" + "".join(f"{cell(cols[n]):>{width}}" for n in names))
    notes = [
        "RTF: steady-state request seconds / audio seconds (BERT on prompt and text + generator).",
        "diffs: against fp32 on the same device ('cpu fp32' column in a CUDA run: against cuda "
        "fp32; upstream: against ours at fp32); '*': waveform compared only up to the first "
        "token whose duration differs (see durations_explained in the JSON).",
    ]
    for name in names:
        for part in ("worker", "server"):
            if cols[name][part].get("error"):
                notes.append(f"{name} {part}: {cols[name][part]['error']}")
    print("\n".join(f"  note: {n}" for n in notes))


def _pair(data: dict[str, Any], first: str, second: str | None = None) -> str:
    second = second or first.replace("first", "steady")
    if data.get(first) is None:
        return "-"
    return f"{_fmt(data.get(first))} / {_fmt(data.get(second))}"


def _weights_s(worker: dict[str, Any]) -> float | None:
    """Load time without the tokenizer and text frontend (CPU work whatever the device)."""
    phases = worker.get("load_phases")
    if not phases:
        return worker.get("load_s")
    return sum(v for k, v in phases.items() if k not in ("load_tokenizer", "load_frontend"))


def _server_gpu(col: dict[str, Any]) -> str:
    return _fmt(col["server"].get("gpu_metric_max_allocated_mib"), 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--model-dir", type=Path, default=REPO / ".models" / "full")
    parser.add_argument("--upstream", type=Path, help="an EmotiVoice checkout to compare with")
    parser.add_argument("--steady", type=int, default=3, help="steady-state requests per input")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument("--no-server", action="store_true", help="skip the server starts")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "gpu-check.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.steady <= 20:
        parser.error("--steady must be between 1 and 20")
    if args.upstream and not (args.upstream / "models" / "prompt_tts_modified").is_dir():
        print(f"gpu-check: {args.upstream} is not an EmotiVoice checkout", file=sys.stderr)
        return 2

    if args.worker:
        parts = args.worker.split("-")
        modules = "upstream" if parts[0] == "upstream" else "ours"
        column = Column(parts[-2], parts[-1], modules)
        result = worker(column, args.model_dir, args.dump, args.steady, args.upstream)
        print(json.dumps(result))
        return 0

    import numpy as np
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu-check: --device cuda asked, but torch {torch.__version__} sees no CUDA device "
            f"(built for CUDA {torch.version.cuda or 'none'}; CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). "
            "Run on a GPU machine, or use --device cpu.",
            file=sys.stderr,
        )
        return 2
    if not (args.model_dir / "config").is_dir():
        print(
            f"gpu-check: no model at {args.model_dir} (make test-model-full writes one)",
            file=sys.stderr,
        )
        return 2

    budget = Budget(args.budget_s)
    started = time.perf_counter()
    sys.path.insert(0, str(REPO / "server"))
    from emotivoice_tts import convert_for_serving
    from emotivoice_tts.layout import ModelLayout
    from emotivoice_tts.spec import ModelSpec

    columns = columns_for(args)
    precisions = sorted({c.precision for c in columns if c.modules == "ours"})
    t = time.perf_counter()
    written = convert_for_serving(args.model_dir, precisions=precisions)
    conversion_s = time.perf_counter() - t if written else None
    hop = ModelSpec.read(ModelLayout.discover(args.model_dir)).config.vocoder.hop_length

    report: dict[str, Any] = {
        "device": args.device,
        "model_dir": str(args.model_dir),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "nvidia_smi": shutil.which("nvidia-smi") is not None,
        "cpus": os.cpu_count(),
        "one_time_conversion_s": conversion_s,
        "inputs": {"short": SHORT_TEXT, "long": LONG_TEXT, "prompt": PROMPT, "speaker": SPEAKER},
        "steady_requests": args.steady,
        "columns": {},
    }
    arrays: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for column in columns:
            dump = Path(tmp) / f"{column.key}.npz"
            result = run_worker(column, args, dump, budget)
            if dump.exists():
                with np.load(dump) as data:
                    arrays[column.name] = {k: data[k] for k in data.files}
            server: dict[str, Any] = {"error": "skipped (--no-server)"}
            if not args.no_server and column.modules == "ours":
                server = run_server(column, args, budget)
            elif column.modules == "upstream":
                server = {}
            before = result.get("gpu_device_used_before_mib")
            driver = result.get("gpu_driver_process_mib")
            if driver is None and before is not None and "gpu_device_used_at_end_mib" in result:
                driver = result["gpu_device_used_at_end_mib"] - before  # device-wide difference
            report["columns"][column.name] = {
                "worker": {k: v for k, v in result.items() if k != "stderr"},
                "server": server,
                "driver_view_mib": driver,
                "vs_fp32": None,
            }
            if "error" in result and result.get("stderr"):
                report["columns"][column.name]["worker"]["stderr_tail"] = result["stderr"][-2000:]
            print(
                f"gpu-check: {column.name} done ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )

    for column in columns:
        if column.name not in arrays:
            continue
        if column.modules == "upstream" or column.precision != "fp32":
            ref = f"{column.device} fp32"
        elif column.device == "cpu" and args.device == "cuda":
            ref = "cuda fp32"
        else:
            continue
        if ref in arrays:
            report["columns"][column.name]["vs_fp32"] = compare(
                arrays[ref], arrays[column.name], hop
            )
            report["columns"][column.name]["vs_fp32_reference"] = ref
    report["total_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print_table(report)
    print(f"\n  total {report['total_s']:.0f} s; written to {args.out}")
    failed = [n for n, c in report["columns"].items() if c["worker"].get("error")]
    return 1 if failed and len(failed) == len(columns) else 0


if __name__ == "__main__":
    raise SystemExit(main())
