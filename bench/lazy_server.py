"""The common recipe's server, for the benchmarks' baselines: load on the first request.

It reports healthy as soon as its port answers and loads the model inside the first speech
request (import, load, the first, cold inference: all paid by that request's user). Standalone,
so the cold-start benchmark can run it in the server image on the real node (mounted from a
ConfigMap) as well as on this machine (bench/server_bench.py).

    python bench/lazy_server.py --model-dir DIR [--host 127.0.0.1] [--port 8080] [--precision fp32]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any


def serve_lazy(model_dir: Path, host: str, port: int, precision: str) -> None:
    """A lazy server: nothing heavy until the first speech request (then import + load)."""
    from flask import Flask, Response, jsonify, request
    from gunicorn.app.base import BaseApplication

    from emotivoice_server import audio
    from emotivoice_server.cpus import cpu_budget

    state: dict[str, Any] = {}
    lock = threading.Lock()

    def synth() -> Any:
        with lock:
            if "synth" not in state:
                began = time.perf_counter()
                from emotivoice_tts import load_synthesizer

                state["synth"] = load_synthesizer(model_dir, precision=precision, device="cpu")
                state["load_s"] = time.perf_counter() - began
            return state["synth"]

    def create_app() -> Flask:
        app = Flask("lazy")

        @app.get("/health")
        def health() -> Response:
            return jsonify({"status": "ok"})

        @app.post("/v1/audio/speech")
        def speech() -> Response:
            body = request.get_json(force=True)
            model = synth()
            with lock:
                # The same intra-op threads as the eager server (set per calling thread).
                import torch

                torch.set_num_threads(cpu_budget())
                waveform = model.synthesize(
                    body["input"], body.get("voice") or model.speakers[0], body.get("prompt", "")
                )
            response = Response(audio.encode(waveform, model.sample_rate, "wav"))
            response.headers["X-Import-And-Load-S"] = f"{state['load_s']:.4f}"
            return response

        return app

    class Lazy(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": 4,
                "timeout": 600,
                "control_socket_disable": True,
            }.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Flask:
            return create_app()

    Lazy().run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    serve_lazy(args.model_dir, args.host, args.port, args.precision)


if __name__ == "__main__":
    main()
