"""Schedules previewed by the preview's tests, one week each in three zones.

- Asia/Shanghai, no DST: the README's example (examples/gpu-peak-windows.yaml).
- America/New_York, the week of 10 March 2024 (02:00 -> 03:00): a daily 02:30 window, whose
  pre-warm run the gap skips that Sunday, and a 03:30 window whose 1h lead crosses the change.
- Europe/Berlin, the week of 27 October 2024 (03:00 -> 02:00): a daily 02:30 window, whose
  pre-warm run the repeated hour runs twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from emotivoice_operator.crd import KIND, api_version

ROOT = Path(__file__).resolve().parents[2]
GPU_EXAMPLE = ROOT / "examples" / "gpu-peak-windows.yaml"


def service(name: str, tz: str, windows: list[dict[str, Any]], minimum: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": api_version(),
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "model": {"source": {"uri": "s3://models/emotivoice/v1"}},
            "replicas": {"min": minimum, "max": 6},
            "warmPool": {"timeZone": tz, "windows": windows},
        },
    }


@dataclass(frozen=True)
class Case:
    body: dict[str, Any]
    start: datetime
    # What the week holds, counted by hand from the schedule.
    occurrences: int
    transitions: int
    hours: int


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = {
    "shanghai": Case(
        body=yaml.safe_load(GPU_EXAMPLE.read_text(encoding="utf-8")),
        start=utc("2025-03-02T16:00"),  # Mon 3 March 00:00 in Shanghai
        occurrences=5 + 7,  # weekday mornings, every evening
        transitions=0,
        hours=168,
    ),
    "new-york": Case(
        body=service(
            "tts-ny",
            "America/New_York",
            [
                {
                    "name": "night",
                    "start": "02:30",
                    "end": "04:00",
                    "leadTime": "0m",
                    "replicas": 2,
                },
                {
                    "name": "early",
                    "days": ["Sun"],
                    "start": "03:30",
                    "end": "05:00",
                    "leadTime": "1h",
                    "replicas": 3,
                },
            ],
        ),
        start=utc("2024-03-04T05:00"),  # Mon 4 March 00:00 EST
        occurrences=7 + 1,
        transitions=1,
        hours=167,
    ),
    "berlin": Case(
        body=service(
            "tts-berlin",
            "Europe/Berlin",
            [{"name": "night", "start": "02:30", "end": "03:30", "leadTime": "0m", "replicas": 2}],
        ),
        start=utc("2024-10-20T22:00"),  # Mon 21 October 00:00 CEST
        occurrences=7,
        transitions=1,
        hours=169,
    ),
}
