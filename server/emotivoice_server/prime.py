"""The pre-warm CronJob's client: wait until the Service is ready, then send the warm-up requests.

The servers warm themselves before they report ready; this client's job is what comes after a
scale-up ahead of a peak: it waits for /ready, then replays the warm-up plan over HTTP so the
prompt-embedding caches behind the Service hold the configured prompts. It uses only the
standard library and `warmup` (no torch, flask or gunicorn import): the pre-warm job imports it
in the operator's image (`emotivoice_operator.prewarm_job`), and `emotivoice-server prime` runs it
by hand.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from emotivoice_server.warmup import ENV_WARMUP, WarmupConfigError, WarmupSpec, parse_warmup, plan

log = logging.getLogger("emotivoice_server.prime")

EXIT_OK = 0
# A malformed warm-up plan (EMOTIVOICE_WARMUP): nothing was sent.
EXIT_BAD_PLAN = 2
EXIT_NOT_READY = 2
EXIT_REQUESTS_FAILED = 3
# How long to wait for /ready by default.
DEFAULT_TIMEOUT_S = 600.0
POLL_INTERVAL_S = 1.0
REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class PrimeResult:
    ready_after_s: float
    sent: int
    failed: int


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _post_json(url: str, body: dict, timeout: float) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_ready(
    base_url: str,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Seconds until /ready answered 200, or None if `timeout` passed first."""
    began = clock()
    last = ""
    while True:
        try:
            status, body = _get(f"{base_url}/ready", timeout=min(10.0, max(1.0, timeout)))
            if status == 200:
                return clock() - began
            last = f"HTTP {status} {body[:200].decode(errors='replace')}"
        except (OSError, urllib.error.URLError) as err:
            last = str(err)
        if clock() - began >= timeout:
            log.error("not ready after %.0f s; last answer: %s", timeout, last)
            return None
        sleep(POLL_INTERVAL_S)


def prime_from_env(
    base_url: str, env: Mapping[str, str], timeout: float = DEFAULT_TIMEOUT_S
) -> tuple[int, str | None]:
    """(exit code, error): `prime` with the plan in `env`'s EMOTIVOICE_WARMUP, the variable the
    operator renders for the servers too; (EXIT_BAD_PLAN, the message) when it is malformed."""
    try:
        spec = parse_warmup(env.get(ENV_WARMUP), ENV_WARMUP)
    except WarmupConfigError as err:
        return EXIT_BAD_PLAN, str(err)
    code, _ = prime(base_url, spec, timeout)
    return code, None


def prime(base_url: str, spec: WarmupSpec, timeout: float) -> tuple[int, PrimeResult | None]:
    """(exit code, result). Voices default to the server's own default speaker."""
    base_url = base_url.rstrip("/")
    ready_after = wait_ready(base_url, timeout)
    if ready_after is None:
        return EXIT_NOT_READY, None
    log.info("ready after %.1f s", ready_after)
    status, body = _get(f"{base_url}/v1/voices", timeout=30)
    if status != 200:
        log.error("GET /v1/voices answered %d: %s", status, body[:200])
        return EXIT_REQUESTS_FAILED, None
    voices = json.loads(body)
    # Order the speakers so that plan() picks the server's default first, as the server does.
    speakers = [voices["default"], *[v for v in voices["voices"] if v != voices["default"]]]
    try:
        items = plan(spec, speakers)
    except WarmupConfigError as err:
        log.error("%s", err)
        return EXIT_REQUESTS_FAILED, None
    failed = 0
    for item in items:
        request = {
            "input": item.text,
            "voice": item.voice,
            "prompt": item.prompt,
            "response_format": "pcm",
        }
        began = time.monotonic()
        try:
            status, body = _post_json(
                f"{base_url}/v1/audio/speech", request, timeout=REQUEST_TIMEOUT_S
            )
        except (OSError, urllib.error.URLError) as err:
            status, body = 0, str(err).encode()
        seconds = time.monotonic() - began
        if status == 200:
            log.info("primed voice=%s prompt=%r seconds=%.2f", item.voice, item.prompt, seconds)
        else:
            failed += 1
            log.error("prime request failed: HTTP %d %s", status, body[:300])
    result = PrimeResult(ready_after_s=ready_after, sent=len(items), failed=failed)
    log.info("primed %d requests, %d failed", result.sent, result.failed)
    return (EXIT_REQUESTS_FAILED if failed else EXIT_OK), result
