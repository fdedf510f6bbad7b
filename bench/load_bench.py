"""Overload: does the server keep serving at capacity, and do its retry hints tell the truth?

One server (the small generated model, default admission: 1 on the model + 8 waiting), one run:

1. capacity: as many clients as the server admits at once, each sending its next request as soon
   as the last one is answered. Their goodput and latency are the baseline.
2. 2x and 4x that many clients, three times each:
   - `openai`: the official client with its default retries (2), which sleeps what
     `retry-after-ms` / `Retry-After` say;
   - `honour`: raw HTTP clients that sleep `retry-after-ms` and try again until served;
   - `ignore`: raw HTTP clients that try again at once.

Per phase: goodput (200s per second), p50/p95 latency of the successful attempts (the attempt
that was answered 200: by Little's law a client's whole wait, retries included, grows with the
number of clients sharing one model; it is reported too, as information), the share of attempts
answered 503, the server worker's CPU (% of one core), the model thread's utilization and
service time per call (from /metrics: the model keeps running, or it does not), CPU per 503
(the CPU of the worker's event loop, which answers refusals itself, per refusal: an upper
bound, as it also reads every request), the load generator's own CPU, and the worker's RSS
before and after,
then after two rounds of 4096-character inputs (what a pod's memory request must hold).

A capacity phase runs before and after each overload phase, and each ratio is against the mean
of the two around it: on a shared machine the other load drifts within a run. The same ratios
are also given with the machine's speed taken out (served per CPU second of the server; p95 in
units of the model's seconds per call in that phase), which is what the server's overload
handling itself costs when the CPUs it gets come and go.

Targets (ratios against the capacity phases of the same run): goodput at 2x and 4x with clients
that honour the hint (`openai`, `honour`) >= 0.8; p95 of successes <= 1.5. Clients that ignore
the hint: goodput as a fraction of capacity, information only (the load generator shares the
CPUs with the server). Timings are wall clock on whatever machine runs this.

    python bench/load_bench.py [--seconds 6] [--torch-threads 1] [--out .bench/load.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emotivoice_server.settings import MAX_INPUT_CHARS  # noqa: E402
from tests.server.server_process import SMALL_MODEL, ServerProcess, start_server  # noqa: E402

TEXTS = ["Hello there, how are you today?", "Good morning to you.", "One more sentence here."]
KINDS = ("openai", "honour", "ignore")
MULTIPLIERS = (2, 4)
HONOURING = ("openai", "honour")
TARGET_GOODPUT_RATIO = 0.8
TARGET_P95_RATIO = 1.5


@dataclass
class Tally:
    """What the clients of one phase saw, inside its measuring window."""

    window: tuple[float, float]
    stop: float = 0.0  # when clients stop sending (the window's end)
    successes: list[float] = field(default_factory=list)  # latency of each 200 attempt
    end_to_end: list[float] = field(default_factory=list)  # first attempt -> 200, retries in
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # calls that gave up (the openai client after its retries)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inside(self, t: float) -> bool:
        return self.window[0] <= t <= self.window[1]

    def attempt(self, status: int, began: float, ended: float) -> None:
        if not self.inside(ended):
            return
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                self.successes.append(ended - began)

    def call(self, ok: bool, began: float, ended: float) -> None:
        if not self.inside(ended):
            return
        with self.lock:
            if ok:
                self.end_to_end.append(ended - began)
            else:
                self.failures += 1


def _hint_seconds(headers: Any) -> float:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        return float(ms) / 1000
    return float(headers.get("Retry-After", "1"))


def raw_client(url: str, tally: Tally, ready: threading.Barrier, index: int, honour: bool) -> None:
    session = requests.Session()
    ready.wait()
    n = 0
    while time.monotonic() < tally.stop:
        body = {"input": TEXTS[(index + n) % len(TEXTS)], "response_format": "wav"}
        n += 1
        first = time.monotonic()
        while time.monotonic() < tally.stop:
            began = time.monotonic()
            try:
                response = session.post(url, json=body, timeout=60)
                _ = response.content
                status = response.status_code
            except requests.RequestException:
                status = 0
            ended = time.monotonic()
            tally.attempt(status, began, ended)
            if status == 200:
                tally.call(True, first, ended)
                break
            if honour and status == 503:
                time.sleep(_hint_seconds(response.headers))


class _TimingTransport(httpx.HTTPTransport):
    """Times each attempt the openai client makes (its retries are invisible from outside)."""

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        began = time.monotonic()
        response = super().handle_request(request)
        response.read()
        self.tally.attempt(response.status_code, began, time.monotonic())
        return response


def openai_client(url: str, tally: Tally, ready: threading.Barrier, index: int) -> None:
    client = openai.OpenAI(
        base_url=url,
        api_key="not-needed",
        http_client=httpx.Client(transport=_TimingTransport(tally), timeout=60),
    )
    speech = client.audio.speech  # its modules load on first use
    ready.wait()  # building 36 clients takes seconds on busy CPUs: not inside the window
    n = 0
    while time.monotonic() < tally.stop:
        began = time.monotonic()
        try:
            speech.create(
                model="emotivoice",
                voice=VOICE[0],
                input=TEXTS[(index + n) % len(TEXTS)],
                response_format="wav",
            )
            ok = True
        except openai.APIError:
            ok = False
        n += 1
        tally.call(ok, began, time.monotonic())


VOICE: list[str] = []


def event_loop_cpu_seconds(server: ServerProcess) -> float:
    """CPU seconds of the worker's main thread: the event loop that reads requests and answers
    refusals itself (emotivoice_server.http_worker)."""
    pid = server.worker_pid()
    stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phase(server: ServerProcess, kind: str, clients: int, seconds: float) -> dict[str, Any]:
    url = f"{server.url}/v1/audio/speech"
    ramp = 1.0
    tally = Tally(window=(0.0, 0.0))
    ready = threading.Barrier(clients + 1)
    target: Callable[..., None]
    if kind == "openai":
        target, args = openai_client, (f"{server.url}/v1",)
    else:
        target, args = raw_client, (url,)
    threads = []
    for i in range(clients):
        extra = () if kind == "openai" else (kind == "honour",)
        threads.append(threading.Thread(target=target, args=(*args, tally, ready, i, *extra)))
    for t in threads:
        t.start()
    tally.stop = math.inf
    tally.window = (math.inf, math.inf)
    ready.wait(300)  # every client built: the ramp starts now
    start = time.monotonic()
    tally.window = (start + ramp, start + ramp + seconds)
    tally.stop = start + ramp + seconds
    time.sleep(max(0.0, tally.window[0] - time.monotonic()))
    cpu0, m0, own0 = server.worker_cpu_seconds(), server.metrics(), time.process_time()
    loop0 = event_loop_cpu_seconds(server)
    time.sleep(max(0.0, tally.window[1] - time.monotonic()))
    cpu1, m1, own1 = server.worker_cpu_seconds(), server.metrics(), time.process_time()
    loop1 = event_loop_cpu_seconds(server)
    for t in threads:
        t.join(120)
    busy = m1["emotivoice_model_busy_seconds_total"] - m0["emotivoice_model_busy_seconds_total"]
    calls = m1["emotivoice_model_calls_total"] - m0["emotivoice_model_calls_total"]
    attempts = sum(tally.statuses.values())
    return {
        "kind": kind,
        "clients": clients,
        "goodput_per_s": round(len(tally.successes) / seconds, 2),
        "p50_s": percentile(tally.successes, 0.5),
        "p95_s": percentile(tally.successes, 0.95),
        "end_to_end_p95_s": percentile(tally.end_to_end, 0.95),
        "share_503": round(tally.statuses.get(503, 0) / attempts, 3) if attempts else None,
        "statuses": dict(sorted(tally.statuses.items())),
        "gave_up": tally.failures,
        "rejections_per_s": round(tally.statuses.get(503, 0) / seconds, 1),
        "server_cpu_percent": round(100 * (cpu1 - cpu0) / seconds, 1),
        # Served per CPU second of the server: what overload costs, whatever CPU it got.
        "served_per_cpu_s": round(len(tally.successes) / max(cpu1 - cpu0, 0.01), 2),
        "clients_cpu_percent": round(100 * (own1 - own0) / seconds, 1),
        "event_loop_cpu_percent": round(100 * (loop1 - loop0) / seconds, 1),
        # The event loop answers every refusal and reads every request: an upper bound.
        "cpu_us_per_503": (
            round(1e6 * (loop1 - loop0) / tally.statuses[503], 1)
            if tally.statuses.get(503)
            else None
        ),
        "model_busy_percent": round(100 * busy / seconds, 1),
        "model_seconds_per_call": round(busy / calls, 4) if calls else None,
        "queue_depth_after": None,
    }


def long_input(round_index: int) -> str:
    """4096 characters (OpenAI's limit) of new sentences: the longest text a client may send."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    sentences = []
    i = 0
    while sum(len(x) + 1 for x in sentences) < MAX_INPUT_CHARS:
        picked = " ".join(words[(i * 3 + k + round_index) % len(words)] for k in range(6))
        sentences.append(f"{picked.capitalize()} number {i}.")
        i += 1
    return " ".join(sentences)[:MAX_INPUT_CHARS]


def memory_rounds(server: ServerProcess, rounds: int = 2, timeout: float = 600) -> list[int]:
    """RSS (MiB) after each round of one 4096-character request: what a pod's memory must hold
    (it grows on the first round and stays: the allocator keeps what it got, see memory.py)."""
    after = []
    for i in range(rounds):
        response = requests.post(
            f"{server.url}/v1/audio/speech",
            json={"input": long_input(i), "response_format": "wav"},
            timeout=timeout,
        )
        response.raise_for_status()
        after.append(server.worker_rss_bytes() >> 20)
    return after


def run(seconds: float, log_dir: Path, torch_threads: int) -> dict[str, Any]:
    server = start_server(
        SMALL_MODEL,
        log_dir / "server.log",
        "--no-require-marker",
        "--no-persist-embeddings",
        "--torch-threads",
        str(torch_threads),
        warmup={"phrases": TEXTS},
    )
    try:
        server.wait_ready(180)
        VOICE[:] = [requests.get(f"{server.url}/v1/voices", timeout=10).json()["default"]]
        # The openai client's first call in a process builds its types and validators (CPU
        # seconds here): paid once before any phase, or the first openai phase idles the model.
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="-").audio.speech.create(
            model="emotivoice", voice=VOICE[0], input=TEXTS[0], response_format="wav"
        )
        capacity = int(server.metrics()["emotivoice_queue_capacity"])
        rss_before = server.worker_rss_bytes()
        # A capacity phase before and after each overload phase: each ratio is against the
        # mean of the two around it, so the drift of a shared machine cancels out.
        baselines = [phase(server, "honour", capacity, seconds)]
        phases = []
        for multiplier in MULTIPLIERS:
            for kind in KINDS:
                phases.append(phase(server, kind, multiplier * capacity, seconds))
                time.sleep(0.5)
                phases[-1]["queue_depth_after"] = server.metrics()["emotivoice_queue_depth"]
                baselines.append(phase(server, "honour", capacity, seconds))
        rss_after = server.worker_rss_bytes()
        rss_long_inputs = memory_rounds(server)
    finally:
        server.stop()
    for i, p in enumerate(phases):
        around = baselines[i : i + 2]
        goodput = statistics.mean(b["goodput_per_s"] for b in around)
        p95 = statistics.mean(b["p95_s"] for b in around)
        p["baseline_goodput_per_s"], p["baseline_p95_s"] = round(goodput, 2), round(p95, 4)
        p["goodput_ratio"] = round(p["goodput_per_s"] / goodput, 3)
        if p["p95_s"] is not None:
            p["p95_ratio"] = round(p["p95_s"] / p95, 3)
        # The same ratios with the machine's speed taken out: served per server CPU second,
        # and p95 in model calls (the model's own seconds per call in that phase).
        per_cpu = statistics.mean(b["served_per_cpu_s"] for b in around)
        p["served_per_cpu_ratio"] = round(p["served_per_cpu_s"] / per_cpu, 3)
        base_calls = statistics.mean(b["p95_s"] / b["model_seconds_per_call"] for b in around)
        if p["p95_s"] is not None and p["model_seconds_per_call"]:
            p["p95_in_calls_ratio"] = round(
                p["p95_s"] / p["model_seconds_per_call"] / base_calls, 3
            )
    capacity_row = dict(baselines[0])
    capacity_row["goodput_per_s"] = round(statistics.mean(b["goodput_per_s"] for b in baselines), 2)
    capacity_row["p95_s"] = round(statistics.mean(b["p95_s"] for b in baselines), 4)
    capacity_row["p50_s"] = round(statistics.mean(b["p50_s"] for b in baselines), 4)
    capacity_row["kind"] = f"cap x{len(baselines)}"
    targets = []
    for p in phases:
        if p["kind"] in HONOURING:
            targets.append(
                {
                    "phase": f"{p['kind']} x{p['clients'] // capacity}",
                    "goodput_ratio": p["goodput_ratio"],
                    "goodput_ok": p["goodput_ratio"] >= TARGET_GOODPUT_RATIO,
                    "p95_ratio": p.get("p95_ratio"),
                    "p95_ok": p.get("p95_ratio") is not None and p["p95_ratio"] <= TARGET_P95_RATIO,
                    "served_per_cpu_ratio": p["served_per_cpu_ratio"],
                    "p95_in_calls_ratio": p.get("p95_in_calls_ratio"),
                    "model_busy_percent": p["model_busy_percent"],
                }
            )
    phases = [capacity_row, *phases]
    return {
        "capacity": capacity,
        "seconds_per_phase": seconds,
        "rss_before_mib": rss_before >> 20,
        "rss_after_mib": rss_after >> 20,
        "rss_after_4096_char_rounds_mib": rss_long_inputs,
        "torch_threads": torch_threads,
        "phases": phases,
        "baselines": baselines,
        "targets": targets,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def report(result: dict[str, Any]) -> None:
    columns = [
        ("kind", "kind"),
        ("clients", "clients"),
        ("goodput/s", "goodput_per_s"),
        ("x cap", "goodput_ratio"),
        ("p50 s", "p50_s"),
        ("p95 s", "p95_s"),
        ("p95 x", "p95_ratio"),
        ("e2e p95", "end_to_end_p95_s"),
        ("503 %", "share_503"),
        ("503/s", "rejections_per_s"),
        ("cpu %", "server_cpu_percent"),
        ("cli cpu%", "clients_cpu_percent"),
        ("loop cpu%", "event_loop_cpu_percent"),
        ("us/503", "cpu_us_per_503"),
        ("model %", "model_busy_percent"),
        ("s/call", "model_seconds_per_call"),
        ("gave up", "gave_up"),
    ]
    print(f"capacity {result['capacity']} admitted; {result['seconds_per_phase']} s per phase")
    print(" ".join(f"{title:>9}" for title, _ in columns))
    for p in result["phases"]:
        row = dict(p)
        if row.get("share_503") is not None:
            row["share_503"] = round(100 * row["share_503"], 1)
        print(" ".join(f"{_fmt(row.get(key)):>9}" for _, key in columns))
    print(
        f"worker RSS: {result['rss_before_mib']} -> {result['rss_after_mib']} MiB over the load; "
        f"after rounds of 4096-character inputs: {result['rss_after_4096_char_rounds_mib']} MiB"
    )
    print("targets (honouring clients, ratios against capacity in this run):")
    for t in result["targets"]:
        print(
            f"  {t['phase']:<10} goodput {t['goodput_ratio']:.3f} (>= {TARGET_GOODPUT_RATIO}: "
            f"{'ok' if t['goodput_ok'] else 'MISSED'})  p95 {_fmt(t['p95_ratio'])} "
            f"(<= {TARGET_P95_RATIO}: {'ok' if t['p95_ok'] else 'MISSED'}); machine speed "
            f"taken out: served/CPU-s {t['served_per_cpu_ratio']:.3f}, p95 in model calls "
            f"{_fmt(t['p95_in_calls_ratio'])}; model busy {t['model_busy_percent']}%"
        )
    spread = [b["goodput_per_s"] for b in result["baselines"]]
    print(f"capacity goodput across the run's capacity phases: {min(spread)}-{max(spread)}/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per phase")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "load.json")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="the server's intra-op threads (default 1: the load generator shares the CPUs, "
        "and a 2-thread OpenMP team whose second thread is descheduled turns 50 ms into seconds)",
    )
    args = parser.parse_args(argv)
    if not SMALL_MODEL.exists():
        print(f"no model at {SMALL_MODEL}: run `make test-model` first", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = run(args.seconds, args.out.parent / "load-logs", args.torch_threads)
    args.out.write_text(json.dumps(result, indent=2))
    report(result)
    print(f"(written to {args.out})")
    return 0 if all(t["goodput_ok"] and t["p95_ok"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
