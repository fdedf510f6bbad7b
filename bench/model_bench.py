"""Model benchmark: loading and inference of our serving path against the released-format path.

Runs every measurement in a fresh Python process (imports, allocator and page cache state as a
server start sees them), round-robin over the modes so that background load spreads evenly, and
reports medians and ratios measured in this run:

- `raw`:      read the bytes of our serving files into memory (the floor for any loader);
- `released`: EmotiVoice's loading sequence on the released files: construct the modules (random
              init), `torch.load` the `g_*` checkpoint + strict `load_state_dict`; BERT
              `from_pretrained` + `torch.load` of the style checkpoint + `load_state_dict`; the
              HiFi-GAN keeps its weight norm (recomputed on every forward, as upstream runs it);
- `ours`:     `load_synthesizer` on current serving files (safetensors in the target precision,
              meta-device modules, weights assigned);
- `upstream`: EmotiVoice's own modules (only with `--upstream DIR`, a checkout of
              netease-youdao/EmotiVoice; its training-only imports numba/scipy are stubbed).

Per mode: import, load, first request and the median of the next requests (each request: tokenize
and embed prompt and text with BERT, then the generator), real-time factor, peak RSS.
Usage: python bench/model_bench.py --model-dir .models/full [--upstream /tmp/EmotiVoice] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TEXT = "Emotional speech for you: the weather is very nice today, and this is a test of the engine."
PROMPT = "Happy"
SPEAKER = "8051"
STEADY_RUNS = 5


# ------------------------------------------------------------------------------ worker side


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serving_files(model_dir: Path, precision: str) -> list[Path]:
    from emotivoice_tts.convert import serving_path
    from emotivoice_tts.layout import ModelLayout

    layout = ModelLayout.discover(model_dir)
    return [serving_path(p, precision) for p in layout.sources().values()]


def worker(
    mode: str,
    model_dir: Path,
    precision: str,
    upstream: str | None,
    token_ids: list[int],
    speaker_id: int,
) -> dict[str, Any]:
    result: dict[str, Any] = {"mode": mode}
    t0 = time.perf_counter()
    if mode == "raw":
        files = _serving_files(model_dir, precision)
        result["import_s"] = time.perf_counter() - t0
        t = time.perf_counter()
        total = 0
        buffers = []
        for path in files:
            buf = bytearray(path.stat().st_size)
            with path.open("rb", buffering=0) as fh:
                total += fh.readinto(buf)
            buffers.append(buf)
        result["load_s"] = time.perf_counter() - t
        result["bytes"] = total
        result["peak_rss_mib"] = _peak_rss_mib()
        return result

    import torch

    if mode != "ours":  # the released path tokenizes with transformers, as upstream does
        from transformers import AutoTokenizer
    result["import_s"] = time.perf_counter() - t0
    if mode.startswith("pair-"):
        return _paired(
            mode.removeprefix("pair-"), model_dir, precision, upstream, token_ids, speaker_id
        )
    if mode == "ours":
        from emotivoice_tts import load_synthesizer

        synth = load_synthesizer(model_dir, precision, "cpu")
        result["load_phases"] = synth.load_timings
        # tokenizer and frontend are timed apart: the released path below does not load them
        result["load_s"] = sum(
            v for k, v in synth.load_timings.items() if k not in ("load_tokenizer", "load_frontend")
        )
        embed, generate = synth.style, synth.generator

        def tokenize(text: str) -> dict[str, torch.Tensor]:
            enc = synth.tokenizer.encode(text)
            return {
                "input_ids": torch.tensor([enc.input_ids]),
                "token_type_ids": torch.tensor([enc.token_type_ids]),
                "attention_mask": torch.tensor([enc.attention_mask]),
            }
    else:
        t = time.perf_counter()
        embed, generate = _load_released(mode, model_dir, upstream)
        result["load_s"] = time.perf_counter() - t
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "WangZeJun/simbert-base-chinese"))

        def tokenize(text: str) -> dict[str, torch.Tensor]:
            return tokenizer([text], return_tensors="pt")

    result["rss_after_load_mib"] = _rss_mib()

    tokens = torch.tensor([token_ids])
    lengths = torch.tensor([len(token_ids)])
    speakers = torch.tensor([speaker_id])

    def request() -> tuple[float, float, int]:
        t = time.perf_counter()
        vectors = []
        for text in (PROMPT, TEXT):
            enc = tokenize(text)
            out = embed(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
            if hasattr(out, "pooler_output"):  # transformers' BertModel (the released path)
                out = out.pooler_output
            vectors.append(out["pooled_output"] if isinstance(out, dict) else out)
        t_gen = time.perf_counter()
        out = generate(tokens, lengths, speakers, vectors[0], vectors[1])
        wav = out["wav_predictions"] if isinstance(out, dict) else out.wav
        end = time.perf_counter()
        return end - t, end - t_gen, wav.shape[-1]

    with torch.inference_mode():
        first, first_gen, samples = request()
        steady = [request() for _ in range(STEADY_RUNS)]
    audio_s = samples / 16000
    result.update(
        tokens=len(token_ids),
        audio_s=audio_s,
        first_request_s=first,
        first_generator_s=first_gen,
        steady_request_s=statistics.median(r[0] for r in steady),
        steady_generator_s=statistics.median(r[1] for r in steady),
        peak_rss_mib=_peak_rss_mib(),
    )
    result["rtf_steady"] = result["steady_request_s"] / audio_s
    return result


def _paired(
    ref: str,
    model_dir: Path,
    precision: str,
    upstream: str | None,
    token_ids: list[int],
    speaker_id: int,
) -> dict[str, Any]:
    """Steady-state generator latency, ours and the reference alternating in one process.

    Background load on a shared machine moves single timings by 2-4x; consecutive ours/reference
    pairs see the same load, so the median of their ratios is what this reports.
    """
    import torch

    from emotivoice_tts import load_synthesizer

    synth = load_synthesizer(model_dir, precision, "cpu")
    _, reference = _load_released(ref, model_dir, upstream)
    tokens = torch.tensor([token_ids])
    lengths = torch.tensor([len(token_ids)])
    speakers = torch.tensor([speaker_id])
    hidden = synth.style.bert.config.hidden_size
    style, content = torch.randn(1, hidden), torch.randn(1, hidden)
    ratios, ours_s, ref_s = [], [], []
    with torch.inference_mode():
        for model in (synth.generator, reference):  # first calls: one-time setup, not measured
            model(tokens, lengths, speakers, style, content)
        for i in range(2 * STEADY_RUNS):
            order = (synth.generator, reference) if i % 2 == 0 else (reference, synth.generator)
            times = {}
            for model in order:
                t = time.perf_counter()
                model(tokens, lengths, speakers, style, content)
                times[model is synth.generator] = time.perf_counter() - t
            ours_s.append(times[True])
            ref_s.append(times[False])
            ratios.append(times[True] / times[False])
    return {
        "mode": f"pair-{ref}",
        "ours_generator_s": statistics.median(ours_s),
        "ref_generator_s": statistics.median(ref_s),
        "ratio": statistics.median(ratios),
        "min_ours_s": min(ours_s),
        "min_ref_s": min(ref_s),
    }


def _load_released(mode: str, model_dir: Path, upstream: str | None):
    """Builds and loads both models the way EmotiVoice's entry points do."""
    import torch

    from emotivoice_tts.layout import ModelLayout, read_lines

    layout = ModelLayout.discover(model_dir)
    n_labels = {name: len(read_lines(path)) for name, path in layout.label_files.items()}
    if mode == "upstream":
        generator, style = _upstream_modules(layout, n_labels, upstream)
    else:
        from transformers import BertModel

        from emotivoice_tts.jets import JetsModel
        from emotivoice_tts.spec import ModelSpec
        from emotivoice_tts.style import StyleEncoder

        spec = ModelSpec.read(layout)
        generator = JetsModel(spec.config, weight_norm=True)  # random init, as upstream builds it
        with torch.device("meta"):
            style = StyleEncoder(spec.bert_config, spec.head_sizes)
        style.bert = BertModel.from_pretrained(str(layout.bert_dir))
        for name, module in style.named_children():
            if name != "bert":
                module.to_empty(device="cpu")
    state = torch.load(layout.generator_ckpt, map_location="cpu")["generator"]
    generator.load_state_dict(state)
    generator.eval()
    model = torch.load(layout.style_ckpt, map_location="cpu")["model"]
    style.load_state_dict({k[7:]: v for k, v in model.items()}, strict=False)
    del state, model
    return style, generator


def _upstream_modules(layout, n_labels: dict[str, int], upstream: str | None):
    import types

    import transformers  # noqa: F401  (imported before the scipy stub: it probes for scipy)
    import yaml

    # Training-only imports of upstream's alignment module.
    numba = types.ModuleType("numba")
    numba.jit = lambda *a, **k: lambda f: f
    scipy = types.ModuleType("scipy")
    stats = types.ModuleType("scipy.stats")
    stats.betabinom = None
    scipy.stats = stats
    sys.modules.update({"numba": numba, "scipy": scipy, "scipy.stats": stats})
    sys.path.insert(0, str(upstream))
    from models.prompt_tts_modified.jets import JETSGenerator
    from models.prompt_tts_modified.simbert import StyleEncoder

    from emotivoice_tts.layout import read_lines

    def ns(d: dict) -> types.SimpleNamespace:
        return types.SimpleNamespace(
            **{k: ns(v) if isinstance(v, dict) else v for k, v in d.items()}
        )

    conf = ns(yaml.safe_load(layout.config.read_text()))
    conf.n_vocab = len(read_lines(layout.tokenlist))
    conf.n_speaker = len(read_lines(layout.speakers))
    bert_hidden = json.loads((layout.bert_dir / "config.json").read_text())["hidden_size"]
    style_conf = types.SimpleNamespace(
        bert_path=str(layout.bert_dir),
        bert_hidden_size=bert_hidden,
        style_dim=128,
        **{f"{k}_n_labels": v for k, v in n_labels.items()},
    )
    return JETSGenerator(conf), StyleEncoder(style_conf)


# ------------------------------------------------------------------------------ driver side


def _evict(paths: list[Path]) -> None:
    """Drops these files from the page cache (POSIX_FADV_DONTNEED), so the run reads the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _run_worker(args: argparse.Namespace, mode: str, ids: list[int], spk: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", mode, "--model-dir", str(args.model_dir)]
    cmd += ["--precision", args.precision, "--speaker-id", str(spk)]
    cmd += ["--token-ids", ",".join(map(str, ids))]
    if args.upstream:
        cmd += ["--upstream", str(args.upstream)]
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--upstream", type=Path, help="an EmotiVoice checkout to compare with")
    parser.add_argument("--cold", action="store_true", help="evict model files before each run")
    parser.add_argument("--out", type=Path, default=Path(".bench/model-bench.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--token-ids", help=argparse.SUPPRESS)
    parser.add_argument("--speaker-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        ids = [int(i) for i in args.token_ids.split(",")]
        result = worker(
            args.worker, args.model_dir, args.precision, args.upstream, ids, args.speaker_id
        )
        print(json.dumps(result))
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from emotivoice_tts import convert_for_serving
    from emotivoice_tts.frontend import ChineseG2P, EnglishG2P, MixedG2P, read_lexicon
    from emotivoice_tts.frontend.numbers import digits_to_chinese
    from emotivoice_tts.layout import ModelLayout
    from emotivoice_tts.spec import ModelSpec

    t = time.perf_counter()
    written = convert_for_serving(args.model_dir, precisions=[args.precision])
    conversion_s = time.perf_counter() - t if written else None
    layout = ModelLayout.discover(args.model_dir)
    spec = ModelSpec.read(layout)
    frontend = MixedG2P(ChineseG2P(digits_to_chinese), EnglishG2P(read_lexicon(layout.lexicon)))
    index = {t: i for i, t in enumerate(spec.tokens)}
    token_ids = [index[p] for p in frontend(TEXT)]
    speaker_id = spec.speakers.index(SPEAKER)
    every_file = [p for p in args.model_dir.rglob("*") if p.is_file()]

    modes = ["raw", "released", "ours"] + (["upstream"] if args.upstream else [])
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for run in range(args.runs):
        for mode in modes:
            if args.cold:
                _evict(every_file)
            rows[mode].append(_run_worker(args, mode, token_ids, speaker_id))
            print(f"run {run + 1}/{args.runs} {mode}: done", file=sys.stderr)

    ref = "upstream" if args.upstream else "released"
    pairs = []
    for run in range(args.runs):
        pairs.append(_run_worker(args, f"pair-{ref}", token_ids, speaker_id))
        print(f"paired run {run + 1}/{args.runs}: done", file=sys.stderr)

    summary: dict[str, Any] = {
        "model_dir": str(args.model_dir),
        "precision": args.precision,
        "cache": "cold" if args.cold else "warm",
        "runs": args.runs,
        "one_time_conversion_s": conversion_s,
        "serving_bytes": rows["raw"][0]["bytes"],
        "released_bytes": sum(p.stat().st_size for p in layout.sources().values()),
        "cpu_threads": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    keys = [
        "load_s",
        "first_request_s",
        "steady_request_s",
        "first_generator_s",
        "steady_generator_s",
        "rtf_steady",
        "peak_rss_mib",
        "rss_after_load_mib",
    ]
    for mode, results in rows.items():
        summary[mode] = {k: _median(results, k) for k in keys if k in results[0]}
        summary[mode]["all_load_s"] = [round(r["load_s"], 3) for r in results]
    summary["ours"]["load_phases"] = rows["ours"][-1]["load_phases"]
    summary["audio_s"] = rows["ours"][0]["audio_s"]
    summary["tokens"] = rows["ours"][0]["tokens"]
    summary[f"paired_{ref}"] = {
        k: _median(pairs, k)
        for k in ("ratio", "ours_generator_s", "ref_generator_s", "min_ours_s", "min_ref_s")
    }
    summary[f"paired_{ref}"]["all_ratios"] = [round(p["ratio"], 3) for p in pairs]
    ours, raw, rel = summary["ours"], summary["raw"], summary["released"]
    ups = summary[ref]
    summary["ratios"] = {
        "ours_load / raw_read (target <= 1.5)": ours["load_s"] / raw["load_s"],
        "ours_load / released_load (target <= 0.5)": ours["load_s"] / rel["load_s"],
        f"ours_steady / {ref}_steady request (target <= 1.0)": ours["steady_request_s"]
        / ups["steady_request_s"],
        f"ours_steady / {ref}_steady generator": ours["steady_generator_s"]
        / ups["steady_generator_s"],
        f"ours / {ref} generator, paired in one process (target <= 1.0)": summary[f"paired_{ref}"][
            "ratio"
        ],
        "ours first / steady request": ours["first_request_s"] / ours["steady_request_s"],
        f"{ref} first / steady request": ups["first_request_s"] / ups["steady_request_s"],
        f"ours_peak_rss / {ref}_peak_rss (target <= 1.0)": ours["peak_rss_mib"]
        / ups["peak_rss_mib"],
    }
    if args.upstream:
        summary["ratios"]["ours_load / upstream_load"] = (
            ours["load_s"] / summary["upstream"]["load_s"]
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
