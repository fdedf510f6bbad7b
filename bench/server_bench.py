"""Cold start, the thing the project is about: the lazy pattern vs. our eager load + warm-up.

Both servers run the same model package on the same full-size model under the same WSGI server
(gunicorn, one worker, threads); only when the model is loaded differs:

(a) lazy: the common pattern (load on the first request, no warm-up). It reports healthy and
    "ready" as soon as the port answers; its first user pays for import, load and the first,
    cold inference.
(b) eager: `emotivoice-server` (imports, loads, warms up, and only then says ready on /ready).

(c) upstream's start: a fresh process that does what EmotiVoice's own servers do before their
    first request (import torch and transformers, build the generator and the style encoder,
    `torch.load` both checkpoints, `from_pretrained`, the tokenizer), timed from process start
    to models loaded, with EmotiVoice's own modules when `--upstream DIR` names a checkout and
    with the same sequence on our module definitions otherwise. Its text frontend (g2p_en with
    NLTK data) cannot run offline and is left out, which flatters upstream.

Measured per run, each in a fresh process: launch -> port answers, launch -> ready, process start
-> model loaded, the first request's latency, steady-state latency (median of the next requests,
each with a new text of the same length, so no content-embedding cache hit flatters it), the
same per second of audio over requests of other lengths (each new length pays oneDNN's per-shape
set-up, as real traffic does), and what a repeated emotion prompt saves (the BERT call the cache
skips). Ratios are against the baselines measured in the same run. Timings are wall clock on
whatever machine runs this; compare ratios, not seconds, across machines.

    python bench/server_bench.py --model-dir .models/full [--runs 2] [--upstream DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.server.server_process import (  # noqa: E402
    FULL_MODEL,
    ServerProcess,
    start_server,
)

# A ~10-word sentence (about the upstream baseline's 58 phonemes); every request shuffles its
# words: the same phonemes, hence the same audio length, but a new text for the content cache.
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "today"]
PROMPT = "Happy"
STEADY_REQUESTS = 5
# Other lengths (words per request) for the per-second-of-audio steady state.
OTHER_LENGTHS = (6, 8, 12, 14, 16)
START_TIMEOUT_S = 600


def shuffled_text(seed: int, count: int = len(WORDS)) -> str:
    rng = random.Random(seed)
    words = [WORDS[i % len(WORDS)] for i in range(count)]
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


# ------------------------------------------------------------------------ upstream's start


def released_load(model_dir: Path, upstream: Path | None) -> None:
    """Child process: upstream's start-up sequence, then print seconds since process start."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from emotivoice_fetch.procstat import process_start_time

    started = process_start_time()
    import model_bench  # imports nothing heavy at module level
    import torch  # noqa: F401
    from transformers import AutoTokenizer

    model_bench._load_released(
        "upstream" if upstream else "released", model_dir, str(upstream) if upstream else None
    )
    AutoTokenizer.from_pretrained(str(model_dir / "WangZeJun/simbert-base-chinese"))
    print(json.dumps({"process_start_to_loaded_s": time.time() - started}))


def measure_upstream(model_dir: Path, upstream: Path | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--released-load"]
    command += ["--model-dir", str(model_dir)]
    if upstream:
        command += ["--upstream", str(upstream)]
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"upstream start failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["modules"] = "EmotiVoice's" if upstream else "ours, built the released way"
    return result


# ------------------------------------------------------------------------ measuring


def post(server: ServerProcess, text: str, prompt: str = PROMPT) -> tuple[float, requests.Response]:
    began = time.perf_counter()
    response = requests.post(
        f"{server.url}/v1/audio/speech",
        json={"input": text, "prompt": prompt, "response_format": "wav"},
        timeout=600,
    )
    seconds = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return seconds, response


def wait_until(server: ServerProcess, path: str, timeout: float) -> float:
    """Seconds from launch until GET `path` answered 200."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{server.log()[-3000:]}")
        try:
            if requests.get(server.url + path, timeout=2).status_code == 200:
                return time.perf_counter() - server.launched
        except requests.RequestException:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{path} not 200 within {timeout} s:\n{server.log()[-3000:]}")


def timed(
    server: ServerProcess, text: str, prompt: str = PROMPT
) -> tuple[float, float, requests.Response]:
    """(wall seconds, worker CPU seconds, response) of one request; one request at a time."""
    cpu = server.worker_cpu_seconds()
    wall, response = post(server, text, prompt)
    return wall, server.worker_cpu_seconds() - cpu, response


def audio_seconds(response: requests.Response) -> float:
    with wave.open(io.BytesIO(response.content)) as wav:
        return wav.getnframes() / wav.getframerate()


def per_audio_second(server: ServerProcess, text: str) -> float:
    wall, response = post(server, text)
    return wall / audio_seconds(response)


def first_and_steady(server: ServerProcess, seed: int) -> dict[str, Any]:
    first, first_cpu, response = timed(server, shuffled_text(seed))
    first_rtf = first / audio_seconds(response)
    steady = [timed(server, shuffled_text(seed + 1 + i)) for i in range(STEADY_REQUESTS)]
    median = statistics.median(w for w, _, _ in steady)
    median_cpu = statistics.median(c for _, c, _ in steady)
    other = [
        per_audio_second(server, shuffled_text(seed + 50 + i, n))
        for i, n in enumerate(OTHER_LENGTHS)
    ]
    return {
        "first_rtf": round(first_rtf, 4),
        "other_lengths_rtf_median": round(statistics.median(other), 4),
        "first_over_other_lengths_rtf": round(first_rtf / statistics.median(other), 3),
        "first_request_s": round(first, 4),
        "steady_median_s": round(median, 4),
        "steady_s": [round(w, 4) for w, _, _ in steady],
        "first_over_steady": round(first / median, 3),
        "first_request_cpu_s": round(first_cpu, 3),
        "steady_median_cpu_s": round(median_cpu, 3),
        "first_over_steady_cpu": round(first_cpu / median_cpu, 3),
    }


def measure_lazy(model_dir: Path, logs: Path, precision: str, seed: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve().parent / "lazy_server.py")]
    server = start_server(
        model_dir, logs / f"lazy-{seed}.log", "--precision", precision, command=command
    )
    try:
        port_s = wait_until(server, "/health", START_TIMEOUT_S)
        result = first_and_steady(server, seed)
        _, response = post(server, shuffled_text(seed + 100))
        # Import + load ran inside the first request; without the idle time before that request
        # arrived, process start -> loaded is the time to bind the port plus that.
        load_s = float(response.headers["X-Import-And-Load-S"])
    finally:
        server.stop()
    return {
        "launch_to_port_s": round(port_s, 4),
        "launch_to_ready_s": round(port_s, 4),  # a lazy server calls itself ready at once
        "import_and_load_s": round(load_s, 4),
        "process_start_to_loaded_s": round(port_s + load_s, 4),
        "launch_to_first_audio_s": round(port_s + result["first_request_s"], 4),
        **result,
    }


def metric(server: ServerProcess, name: str) -> float:
    return server.metrics().get(name, float("nan"))


def measure_eager(model_dir: Path, logs: Path, precision: str, seed: int) -> dict[str, Any]:
    server = start_server(
        model_dir,
        logs / f"eager-{seed}.log",
        "--precision",
        precision,
        "--device",
        "cpu",
        "--no-require-marker",
        "--no-persist-embeddings",
    )
    try:
        port_s = wait_until(server, "/health", START_TIMEOUT_S)
        ready_s = wait_until(server, "/ready", START_TIMEOUT_S)
        cpu_to_ready = server.worker_cpu_seconds()
        startup = server.metrics()
        result = first_and_steady(server, seed)
        cache = prompt_cache_saving(server, seed)
        phases = requests.get(server.url + "/ready", timeout=5).json()["phase_seconds"]
    finally:
        server.stop()
    return {
        "launch_to_port_s": round(port_s, 4),
        "launch_to_ready_s": round(ready_s, 4),
        "process_start_to_loaded_s": round(
            startup["emotivoice_process_start_to_loaded_seconds"], 4
        ),
        "process_start_to_ready_s": round(startup["emotivoice_process_start_to_ready_seconds"], 4),
        "phase_seconds": phases,
        "worker_cpu_to_ready_s": round(cpu_to_ready, 3),
        "launch_to_first_audio_s": round(ready_s + result["first_request_s"], 4),
        **result,
        "prompt_cache": cache,
    }


def prompt_cache_saving(server: ServerProcess, seed: int) -> dict[str, Any]:
    """Pairs of requests: a never-seen prompt (BERT runs) then the same prompt (cache hit)."""
    misses, hits, miss_cpu, hit_cpu = [], [], [], []
    hit_key = 'emotivoice_embedding_cache_hits_total{kind="prompt"}'
    before = metric(server, hit_key)
    for i in range(6):
        prompt = f"{PROMPT} and calm, variant {seed}-{i}"
        wall, cpu, _ = timed(server, shuffled_text(seed + 200 + 2 * i), prompt)
        misses.append(wall)
        miss_cpu.append(cpu)
        wall, cpu, _ = timed(server, shuffled_text(seed + 201 + 2 * i), prompt)
        hits.append(wall)
        hit_cpu.append(cpu)
    metrics = server.metrics()
    bert_sum = metrics['emotivoice_embedding_compute_seconds_sum{kind="prompt"}']
    bert_count = metrics['emotivoice_embedding_compute_seconds_count{kind="prompt"}']
    return {
        "miss_median_s": round(statistics.median(misses), 4),
        "hit_median_s": round(statistics.median(hits), 4),
        "saved_median_s": round(statistics.median(misses) - statistics.median(hits), 4),
        "saved_median_cpu_s": round(statistics.median(miss_cpu) - statistics.median(hit_cpu), 3),
        "bert_call_mean_s": round(bert_sum / bert_count, 4) if bert_count else None,
        "cache_hits_moved_by": metrics[hit_key] - before,
    }


# ------------------------------------------------------------------------ report


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(kind: str, key: str) -> float:
        return statistics.median(r[kind][key] for r in runs)

    lazy_loaded = med("lazy", "process_start_to_loaded_s")
    upstream_loaded = med("upstream", "process_start_to_loaded_s")
    return {
        "eager_loaded_over_upstream_loaded": round(
            med("eager", "process_start_to_loaded_s") / upstream_loaded, 3
        ),
        "eager_ready_over_upstream_loaded": round(
            med("eager", "process_start_to_ready_s") / upstream_loaded, 3
        ),
        "eager_first_over_other_lengths_rtf": round(
            med("eager", "first_over_other_lengths_rtf"), 3
        ),
        "eager_loaded_over_lazy_loaded": round(
            med("eager", "process_start_to_loaded_s") / lazy_loaded, 3
        ),
        "eager_ready_over_lazy_loaded": round(
            med("eager", "process_start_to_ready_s") / lazy_loaded, 3
        ),
        "eager_first_over_steady": round(med("eager", "first_over_steady"), 3),
        "lazy_first_over_steady": round(med("lazy", "first_over_steady"), 3),
        "eager_first_over_steady_cpu": round(med("eager", "first_over_steady_cpu"), 3),
        "lazy_first_over_steady_cpu": round(med("lazy", "first_over_steady_cpu"), 3),
        "first_request_eager_over_lazy": round(
            med("eager", "first_request_s") / med("lazy", "first_request_s"), 3
        ),
        "steady_eager_over_lazy": round(
            med("eager", "steady_median_s") / med("lazy", "steady_median_s"), 3
        ),
        "launch_to_first_audio_eager_over_lazy": round(
            med("eager", "launch_to_first_audio_s") / med("lazy", "launch_to_first_audio_s"), 3
        ),
    }


def print_report(report: dict[str, Any]) -> None:
    rows = [
        ("launch -> port answers (s)", "launch_to_port_s"),
        ("launch -> ready (s)", "launch_to_ready_s"),
        ("process start -> model loaded (s)", "process_start_to_loaded_s"),
        ("first request after ready (s)", "first_request_s"),
        ("steady-state request, median (s)", "steady_median_s"),
        ("first / steady", "first_over_steady"),
        ("first request, worker CPU (s)", "first_request_cpu_s"),
        ("steady-state request, worker CPU (s)", "steady_median_cpu_s"),
        ("first / steady (CPU)", "first_over_steady_cpu"),
        ("first request, s per s of audio", "first_rtf"),
        ("other lengths, s per s of audio", "other_lengths_rtf_median"),
        ("first / other lengths (per s of audio)", "first_over_other_lengths_rtf"),
        ("launch -> first audio (s)", "launch_to_first_audio_s"),
    ]
    for i, run in enumerate(report["runs"]):
        print(f"\nrun {i + 1}: {'metric':<36} {'lazy (a)':>10} {'eager (b)':>10}")
        for label, key in rows:
            print(f"       {label:<36} {run['lazy'][key]:>10} {run['eager'][key]:>10}")
        upstream = run["upstream"]
        print(
            f"       upstream process start -> loaded: {upstream['process_start_to_loaded_s']:.3f} s"
            f" ({upstream['modules']} modules)"
        )
        print(f"       eager phases: {run['eager']['phase_seconds']}")
        print(f"       eager process start -> ready: {run['eager']['process_start_to_ready_s']} s")
        print(f"       eager worker CPU until ready: {run['eager']['worker_cpu_to_ready_s']} s")
        print(f"       prompt cache: {run['eager']['prompt_cache']}")
    print("\nratios (medians over runs):")
    for key, value in report["summary"].items():
        print(f"  {key:<40} {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=FULL_MODEL)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "server.json")
    parser.add_argument("--upstream", type=Path, help="an EmotiVoice checkout (upstream's modules)")
    parser.add_argument("--released-load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.released_load:
        released_load(args.model_dir, args.upstream)
        return 0
    if not (args.model_dir / "config").is_dir():
        print(f"no model at {args.model_dir}: run `make test-model-full` first", file=sys.stderr)
        return 2
    logs = args.out.parent / "server-bench-logs"
    runs = []
    for i in range(args.runs):
        seed = 1000 * (i + 1)
        # Alternate the order so that neither side always gets the warmer page cache.
        order = ("lazy", "upstream", "eager") if i % 2 == 0 else ("eager", "upstream", "lazy")
        run: dict[str, Any] = {}
        for kind in order:
            if kind == "upstream":
                run[kind] = measure_upstream(args.model_dir, args.upstream)
            else:
                measure = measure_lazy if kind == "lazy" else measure_eager
                run[kind] = measure(args.model_dir, logs, args.precision, seed)
            print(f"run {i + 1} {kind}: done", file=sys.stderr)
        runs.append(run)
    report = {
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "model_dir": str(args.model_dir),
        "precision": args.precision,
        "upstream": str(args.upstream) if args.upstream else None,
        "runs": runs,
        "summary": summarize(runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_report(report)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
