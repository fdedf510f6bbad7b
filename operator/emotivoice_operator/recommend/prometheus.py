"""The Prometheus HTTP API, and nothing else: ``query_range`` at a 1-minute step, split into
chunks under Prometheus's limit of 11,000 points per series.

Errors come back as ``PrometheusError`` whose message names the URL and what went wrong.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000
STEP_S = 60
TIMEOUT_S = 60.0


class PrometheusError(RuntimeError):
    """A query that could not be answered (unreachable server, refused query)."""


@dataclass(frozen=True)
class Series:
    """One result series: its labels and its (unix seconds, value) points, in time order."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def query_range(
    url: str, expr: str, start_s: int, end_s: int, step_s: int = STEP_S
) -> list[Series]:
    """``expr`` evaluated every ``step_s`` from ``start_s`` to ``end_s`` (both included), the
    chunks' series joined by their labels."""
    per_chunk = (MAX_POINTS - 1) * step_s
    joined: dict[tuple[tuple[str, str], ...], Series] = {}
    chunk_start = start_s
    while chunk_start <= end_s:
        chunk_end = min(end_s, chunk_start + per_chunk)
        data = _get(
            url,
            "query_range",
            {"query": expr, "start": str(chunk_start), "end": str(chunk_end), "step": str(step_s)},
        )
        for item in data.get("result", []):
            labels = dict(item.get("metric", {}))
            key = tuple(sorted(labels.items()))
            points = [(float(t), float(v)) for t, v in item.get("values", [])]
            if key in joined:
                joined[key].points.extend(points)
            else:
                joined[key] = Series(labels, points)
        chunk_start = chunk_end + step_s
    return list(joined.values())


def _get(url: str, path: str, params: dict[str, str]) -> dict:
    full = f"{url.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=TIMEOUT_S) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            raise PrometheusError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(f"cannot reach Prometheus at {url}: {reason}") from None
    except ValueError as exc:
        raise PrometheusError(f"{url} did not answer like Prometheus's API ({exc})") from None
    if body.get("status") != "success":
        raise PrometheusError(
            f"{url} refused the query {params.get('query')!r}: "
            f"{body.get('errorType')}: {body.get('error')}"
        )
    return body.get("data") or {}
