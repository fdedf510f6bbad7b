"""``recommend`` on five weeks of 1-minute history from a real Prometheus, against the raw fetch.

The history is tests/support/traffic_history.py's (6 series: 2 pods x busy seconds, 200s and
503s), backfilled by promtool (cached by content) into a Prometheus on 127.0.0.1. Measured in
one run, best of ``--repeat``:

- baseline: the two ``query_range`` fetches alone (1-minute step, chunked under 11,000 points);
- recommend: the whole command as a user runs it (``main(["recommend", ...])``: fetch, history,
  estimate, proposal, floors, scores, backtest and the printed report; no plot).

Target: recommend under 10 s; reported beside the ratio recommend / fetch.

    python bench/recommend_bench.py [--repeat 3] [--out .bench/recommend.json]   (make bench-recommend)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from emotivoice_operator.cli_recommend import BUSY, RATE_WINDOW, REQUESTS
from emotivoice_operator.main import main
from emotivoice_operator.recommend.prometheus import query_range
from tests.support import traffic_history as th
from tests.support.prometheus import Prometheus, backfill

TARGET_S = 10.0
WEEKS = 5


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(repeat: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="recommend-bench-"))
    t0 = time.perf_counter()
    data = backfill(th.openmetrics(th.generate()), work / "data")
    prepare_s = time.perf_counter() - t0
    server = Prometheus(data=data, log_path=work / "prometheus.log").start()
    try:
        manifest = work / "tts.yaml"
        manifest.write_text(yaml.safe_dump(th.manifest()))
        end = th.end_instant()
        end_s = int(end.timestamp())
        start_s = end_s - WEEKS * 7 * 86_400
        sel = f'namespace="{th.NAMESPACE}",service="{th.SERVICE}"'

        def fetch() -> None:
            query_range(server.url, f"sum(rate({BUSY}{{{sel}}}[{RATE_WINDOW}]))", start_s, end_s)
            query_range(
                server.url,
                f"sum by (code) (rate({REQUESTS}{{{sel}}}[{RATE_WINDOW}]))",
                start_s,
                end_s,
            )

        def recommend() -> None:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = main(["recommend", "-f", str(manifest), "--prometheus", server.url,
                           "--weeks", str(WEEKS), "--end", end.isoformat()])  # fmt: skip
            if rc != 0:
                raise RuntimeError("recommend failed")

        recommend()  # warm: imports, Prometheus's page cache
        fetch_s = _best(fetch, repeat)
        recommend_s = _best(recommend, repeat)
    finally:
        server.stop()
    return {
        "weeks": WEEKS,
        "series": 6,
        "backfill_or_cache_s": round(prepare_s, 2),
        "fetch_s": round(fetch_s, 3),
        "recommend_s": round(recommend_s, 3),
        "ratio": round(recommend_s / fetch_s, 2),
        "target_s": TARGET_S,
        "met": recommend_s < TARGET_S,
    }


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args.repeat)
    print(
        f"recommend, {result['weeks']} weeks of 1-minute history ({result['series']} series): "
        f"{result['recommend_s']:.2f} s (target < {TARGET_S:.0f} s: "
        f"{'met' if result['met'] else 'MISSED'}); the raw query_range fetch alone "
        f"{result['fetch_s']:.2f} s; recommend / fetch {result['ratio']:.2f}x"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(cli())
