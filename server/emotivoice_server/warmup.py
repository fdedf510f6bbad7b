"""What to synthesize before reporting ready, shared by the server and the `prime` client.

The server runs this plan before /ready turns 200 so that no user request meets a cold code
path; the pre-warm CronJob's `prime` client replays the same plan over HTTP so that the embedding
caches of every replica behind the Service hold the configured prompts. One plan, two callers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A short input, a Chinese one and a sentence of a typical request's length. Each is one model
# call, and warm-up time delays readiness, so each must earn its place (measured with
# bench/server_bench.py): the three pay PyTorch's and oneDNN's one-time set-up and grow the
# allocator's heap (memory.py keeps it) to a typical request's size, after which a first request
# costs what later ones do. What no warm-up can pay for is oneDNN's set-up for each new input
# length (a few percent), which every request of an unseen length pays, first or not. A longer
# phrase (up to pieces.MAX_PIECE_CHARS) also grows the heap for the longest pieces, for about two
# more seconds of start-up; configure one where long inputs dominate.
DEFAULT_PHRASES: tuple[str, ...] = (
    "Hello.",
    "今天天气真好。",
    "Good morning, and welcome to the show about speech synthesis.",
)
# The empty prompt is the OpenAI default (no `prompt`/`instructions`); the others are common
# emotion prompts whose style embeddings are worth having cached before the first user.
DEFAULT_PROMPTS: tuple[str, ...] = ("", "Happy", "开心")

ENV_WARMUP = "EMOTIVOICE_WARMUP"


class WarmupConfigError(ValueError):
    """The warm-up configuration is malformed; the message names the field and the fix."""


@dataclass(frozen=True)
class WarmupSpec:
    """The configured phrases, voices and prompts (empty voices: the model's first speaker)."""

    phrases: tuple[str, ...] = DEFAULT_PHRASES
    voices: tuple[str, ...] = ()
    prompts: tuple[str, ...] = DEFAULT_PROMPTS


@dataclass(frozen=True)
class WarmupItem:
    """One warm-up synthesis: the same inputs a user request would carry."""

    text: str
    voice: str
    prompt: str


def _string_list(data: Mapping[str, object], key: str, source: str) -> tuple[str, ...] | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WarmupConfigError(
            f"{source}: '{key}' must be a list of strings, got {json.dumps(value)[:80]}"
        )
    return tuple(value)


def parse_warmup(text: str | None, source: str = ENV_WARMUP) -> WarmupSpec:
    """Parse `{"phrases": [...], "voices": [...], "prompts": [...]}`; absent keys keep defaults.

    An empty phrase list is allowed only if it is explicit (`"phrases": []`): it disables the
    synthesis part of warm-up, which a user may want on a tiny test model but never by accident.
    """
    if text is None or not text.strip():
        return WarmupSpec()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise WarmupConfigError(f"{source}: not valid JSON ({err.msg} at char {err.pos})") from err
    if not isinstance(data, dict):
        raise WarmupConfigError(
            f'{source}: must be a JSON object like {{"phrases": ["Hello."], "voices": ["8051"]}}'
        )
    unknown = sorted(set(data) - {"phrases", "voices", "prompts"})
    if unknown:
        raise WarmupConfigError(
            f"{source}: unknown key(s) {unknown}; allowed keys are phrases, voices, prompts"
        )
    phrases = _string_list(data, "phrases", source)
    if phrases is not None and any(not p.strip() for p in phrases):
        raise WarmupConfigError(f"{source}: 'phrases' must not contain empty strings")
    voices = _string_list(data, "voices", source)
    prompts = _string_list(data, "prompts", source)
    return WarmupSpec(
        phrases=DEFAULT_PHRASES if phrases is None else phrases,
        voices=() if voices is None else voices,
        prompts=DEFAULT_PROMPTS if prompts is None or not prompts else prompts,
    )


def plan(spec: WarmupSpec, speakers: Sequence[str]) -> list[WarmupItem]:
    """Every phrase with every voice, prompts cycled so that each prompt is used at least once.

    The full cross product (phrases x voices x prompts) would grow multiplicatively for no gain:
    the compute graph does not depend on which voice or prompt is used, only the embedding
    cache does, and cycling fills that too.
    """
    if not speakers:
        raise WarmupConfigError("the model lists no speakers; cannot plan warm-up")
    unknown = [v for v in spec.voices if v not in speakers]
    if unknown:
        raise WarmupConfigError(
            f"{ENV_WARMUP}: voices {unknown} are not speakers of this model "
            f"(it has {len(speakers)}, e.g. {list(speakers[:3])}); fix 'voices'"
        )
    voices = spec.voices or (speakers[0],)
    pairs = [(phrase, voice) for phrase in spec.phrases for voice in voices]
    if not pairs:
        return []
    count = max(len(pairs), len(spec.prompts))
    return [
        WarmupItem(
            text=pairs[i % len(pairs)][0],
            voice=pairs[i % len(pairs)][1],
            prompt=spec.prompts[i % len(spec.prompts)],
        )
        for i in range(count)
    ]
