"""Start-up in the background: verify the cache, import, load, warm up, then (only then) ready.

The WSGI server binds its port and answers /health before any of this finishes; /ready reads the
phase recorded here. Each phase is logged in one line with its duration and exported as a
metric. A failure stops the sequence, is logged once with its cause, and stays visible on /ready
as a 503 naming it; the process does not exit. The pod is not ready, and once its startup probe
has failed for ``startupTimeoutSeconds`` the kubelet restarts the server container (the pod's
restart count grows, with back-off). That restart does not help where the cause is on the volume
(a missing or stale completion marker, a broken checkpoint): only the fetch step fixes the
cache, and it runs again when the pod is replaced (``kubectl delete pod``), not when one of
its containers restarts.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from emotivoice_server import audio, embedding_cache
from emotivoice_server.cpus import cpu_budget
from emotivoice_server.embedding_cache import LruCache
from emotivoice_server.engine import SpeechEngine, Synthesizer
from emotivoice_server.memory import keep_freed_memory
from emotivoice_server.metrics import ServerMetrics
from emotivoice_server.model_thread import ModelThread
from emotivoice_server.settings import ServerSettings
from emotivoice_server.warmup import plan

log = logging.getLogger("emotivoice_server.startup")

# How often a changed prompt-embedding cache is written beside the model.
PERSIST_INTERVAL_S = 300.0


def verify_marker(settings: ServerSettings) -> frozenset[str]:
    """Refuse a model directory the fetch step has not completed and verified; returns the
    files its marker lists (model files and the hook's artifacts), the only ones loaded."""
    from emotivoice_fetch.marker import verify_complete

    model = verify_complete(settings.model_dir)
    return frozenset({*model.files, *model.artifacts})


def start_frontend(settings: ServerSettings) -> Any:
    """The text frontend in a child process: it builds its dictionaries (a second and a half of
    pure Python) on another core while this process imports torch."""
    from emotivoice_tts.frontend.process import FrontendProcess
    from emotivoice_tts.layout import LEXICON_FILE

    # The path alone: a missing file is reported by the loading phase, not before any phase.
    return FrontendProcess(settings.model_dir / LEXICON_FILE)


def load_model(settings: ServerSettings, frontend: Any) -> Synthesizer:
    from emotivoice_tts import load_synthesizer

    return load_synthesizer(
        settings.model_dir,
        precision=settings.precision,
        device=settings.torch_device,
        load_format=settings.load_format,
        frontend=frontend,
        verified=settings.verified_files,
    )


def import_model_package(torch_threads: int) -> None:
    """Imported on its own so the cost of importing torch shows as its own phase.

    Runs on the model thread, which is where the intra-op thread count must be set: PyTorch's
    OpenMP setting belongs to the calling thread.
    """
    import torch

    import emotivoice_tts  # noqa: F401

    torch.set_num_threads(torch_threads)


@dataclass
class StartupState:
    """What /ready reports: the phase, each finished phase's seconds, and the error if any."""

    phase: str = "starting"
    phase_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    ready_after_s: float | None = None


class ModelHost:
    """Owns the start-up thread and, once ready, the engine that serves requests."""

    def __init__(
        self,
        settings: ServerSettings,
        metrics: ServerMetrics,
        *,
        verify: Callable[[ServerSettings], frozenset[str] | None] = verify_marker,
        frontend: Callable[[ServerSettings], Any] = start_frontend,
        loader: Callable[[ServerSettings, Any], Synthesizer] = load_model,
        importer: Callable[[int], None] = import_model_package,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state = StartupState()
        self.engine: SpeechEngine | None = None
        self.device: str | None = None
        self._verify = verify
        self._frontend = frontend
        self._loader = loader
        self._importer = importer
        self._clock = clock
        self._model_thread = ModelThread(self._run)
        self._stop = threading.Event()
        self._fingerprint: str | None = None
        self._frontend_process: Any = None
        # Set once, on SIGTERM (see `drain`); read by /ready.
        self.draining = False

    # -- the start-up sequence -------------------------------------------------------------

    def start(self) -> None:
        """Start-up runs on the model thread, which then stays to serve every model call."""
        self._model_thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until start-up ended (ready or failed); True if it ended in time."""
        return self._model_thread.started.wait(timeout)

    @property
    def ready(self) -> bool:
        return self.state.phase == "ready"

    @property
    def model_thread(self) -> ModelThread:
        """The thread every model call runs on (its busy/CPU seconds go to /metrics)."""
        return self._model_thread

    def _since_start(self) -> float:
        return self._clock() - self.settings.process_start

    def _phase(self, name: str, action: Callable[[], Any], detail: str = "") -> Any:
        self.state.phase = name
        self.metrics.set_phase(name)
        began = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - began
        self.state.phase_seconds[name] = round(seconds, 4)
        self.metrics.phase_seconds.labels(phase=name).set(seconds)
        log.info(
            "startup phase=%s seconds=%.3f since_process_start=%.3f%s",
            name,
            seconds,
            self._since_start(),
            f" {detail}" if detail else "",
        )
        return result

    def _run(self) -> bool:
        """The start-up sequence; True when ready (the model thread then serves requests)."""
        s = self.settings
        try:
            if s.require_marker:
                verified = self._phase(
                    "verifying", lambda: self._verify(s), f"model_dir={s.model_dir}"
                )
                if verified is not None:
                    self.settings = s = replace(s, verified_files=verified)
            else:
                log.warning("startup: completion marker NOT checked (--no-require-marker)")
            keep_freed_memory()
            frontend = self._frontend_process = self._frontend(s)
            threads = s.torch_threads or cpu_budget()
            self._phase("importing", lambda: self._importer(threads), f"torch_threads={threads}")
            synth = self._phase(
                "loading",
                lambda: self._load(s, frontend),
                f"precision={s.precision} device={s.device}",
            )
            self.device = str(synth.device)
            self._report_load_steps(synth)
            self.metrics.process_start_to_loaded.set(self._since_start())
            self.metrics.model_info.info(
                {
                    "name": s.model_name,
                    "model_dir": str(s.model_dir),
                    "precision": str(synth.precision),
                    "device": self.device,
                    "sample_rate": str(synth.sample_rate),
                    "speakers": str(len(synth.speakers)),
                }
            )
            engine = SpeechEngine(
                synth,
                self._model_thread.call,
                self.metrics,
                prompt_cache=LruCache(s.prompt_cache_size),
                content_cache=LruCache(s.content_cache_size),
            )
            self._restore_prompt_cache(engine)
            count = self._phase("warming", lambda: self._warm_up(engine))
            self._persist(engine)
            # Everything loaded so far lives for the whole process: keep the collector from
            # walking it again during the first requests.
            gc.collect()
            gc.freeze()
            self.engine = engine
            self.state.ready_after_s = round(self._since_start(), 4)
            self.metrics.process_start_to_ready.set(self.state.ready_after_s)
            self.metrics.ready.set(0 if self.draining else 1)
            self.state.phase = "ready"
            self.metrics.set_phase("ready")
            log.info(
                "startup phase=ready since_process_start=%.3f warmup_syntheses=%d",
                self.state.ready_after_s,
                count,
            )
            self._start_persister(engine)
            return True
        except BaseException as err:  # anything, so /ready never sits in a phase forever
            failed_in = self.state.phase
            self.state.error = f"{type(err).__name__} while {failed_in}: {err}"
            self.state.phase = "failed"
            self.metrics.set_phase("failed")
            log.error("startup failed phase=%s error=%s", failed_in, self.state.error)
            if self._frontend_process is not None:  # a failed pod stays up: free its child
                self._frontend_process.close()
                self._frontend_process = None
            log.debug("startup failure detail", exc_info=True)
            return False

    def _load(self, settings: ServerSettings, frontend: Any) -> Synthesizer:
        """The weights (whose errors name the files), then the frontend process's dictionaries,
        built meanwhile on another core (what is left of that wait is logged)."""
        synth = self._loader(settings, frontend)
        waited = time.perf_counter()
        frontend.wait_ready()
        waited = time.perf_counter() - waited
        self.metrics.load_step_seconds.labels(step="frontend_wait").set(waited)
        log.info("startup frontend process ready, waited seconds=%.3f", waited)
        return synth

    def _report_load_steps(self, synth: Synthesizer) -> None:
        steps: dict[str, float] = dict(getattr(synth, "load_timings", None) or {})
        for step, seconds in steps.items():
            self.metrics.load_step_seconds.labels(step=step).set(seconds)
        if steps:
            log.info("startup load_steps %s", " ".join(f"{k}={v:.3f}" for k, v in steps.items()))

    def _warm_up(self, engine: SpeechEngine) -> int:
        items = plan(self.settings.warmup, engine.speakers)
        waveform = None
        for item in items:
            for sentence in engine.sentences(item.text):
                waveform = engine.render(sentence, item.voice, item.prompt)
                self.metrics.warmup_requests.inc()
        if waveform is not None:
            # The first response of each format would otherwise pay its encoder's set-up
            # (libsndfile and its MP3 and Opus encoders) inside a user's request.
            for response_format in sorted(audio.available_formats()):
                audio.encode(waveform, engine.synth.sample_rate, response_format)
        return len(items)

    # -- prompt-embedding persistence ------------------------------------------------------

    def _restore_prompt_cache(self, engine: SpeechEngine) -> None:
        path = self.settings.embedding_cache_file
        if path is None:
            return
        self._fingerprint = embedding_cache.model_fingerprint(
            self.settings.model_dir, str(engine.synth.precision), str(engine.synth.device)
        )
        loaded = embedding_cache.load(
            engine.prompt_cache, path, self._fingerprint, str(engine.synth.device)
        )
        self.metrics.cache_entries.labels(kind="prompt").set(len(engine.prompt_cache))
        log.info("startup prompt_embeddings_restored=%d file=%s", loaded, path)

    def _persist(self, engine: SpeechEngine) -> None:
        path = self.settings.embedding_cache_file
        if path is None or self._fingerprint is None or not engine.prompt_cache.dirty:
            return
        try:
            saved = embedding_cache.save(engine.prompt_cache, path, self._fingerprint)
            log.info("prompt embeddings saved=%d file=%s", saved, path)
        except OSError as err:  # a read-only or full volume costs the cache, not the server
            log.warning("prompt embeddings not saved to %s: %s", path, err)

    def _start_persister(self, engine: SpeechEngine) -> None:
        if self.settings.embedding_cache_file is None:
            return

        def loop() -> None:
            while not self._stop.wait(PERSIST_INTERVAL_S):
                self._persist(engine)

        threading.Thread(target=loop, name="embedding-persister", daemon=True).start()

    def drain(self) -> None:
        """The process was told to stop: /ready answers 503 from now on, so no new traffic is
        routed here, while requests already here (and on open connections) are still served.
        Called from the worker's SIGTERM handler: it only sets a flag and a gauge."""
        self.draining = True
        self.metrics.ready.set(0)

    def shutdown(self) -> None:
        """Called when the worker exits: save the prompt cache one last time."""
        self._stop.set()
        if self.engine is not None:
            self._persist(self.engine)
        self._model_thread.stop()
        if self._frontend_process is not None:
            self._frontend_process.close()

    # -- what /ready says ------------------------------------------------------------------

    def readiness(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ready": self.ready and not self.draining,
            "phase": self.state.phase,
            "phase_seconds": dict(self.state.phase_seconds),
            "since_process_start_s": round(self._since_start(), 3),
        }
        if self.state.ready_after_s is not None:
            body["ready_after_s"] = self.state.ready_after_s
        if self.settings.process_start > 0:
            # The instant ready_after_s and since_process_start_s count from (epoch seconds):
            # the operator anchors the server's phases on it, not on the container's
            # whole-second startedAt (tuning/phases.py).
            body["process_started_at"] = round(self.settings.process_start, 3)
        if self.state.error is not None:
            body["error"] = self.state.error
        if self.draining:
            body["draining"] = True
            body["message"] = "draining: the server is stopping and finishes the requests it has"
        return body
