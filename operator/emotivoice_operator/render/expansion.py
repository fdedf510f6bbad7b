"""Keep the kubelet's ``$(VAR)`` expansion away from values that come from the spec.

The kubelet expands ``$(NAME)`` in a container's command, args and env values from the
container's own environment, Secrets referenced through ``secretKeyRef`` included. A model
``uri`` of ``s3://models/$(AWS_SECRET_ACCESS_KEY)`` rendered verbatim into the fetch step's
args would become the secret key, which the fetch step then logs. ``$$`` is the kubelet's
escape for a literal ``$`` (in every position), so every value we render from the spec is
written with ``$`` doubled and reaches the process exactly as the user wrote it.

Not escaped: the EnvVar objects of ``spec.server.env``. They are core/v1 EnvVar objects passed
through as the user wrote them, where ``$(VAR)`` is Kubernetes' documented meaning (and
``valueFrom`` already lets their author read any Secret key the pod may).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def literal(text: str) -> str:
    """``text`` as the kubelet must be given it so that the process receives ``text``."""
    return text.replace("$", "$$")


def literal_args(args: Iterable[str]) -> list[str]:
    return [literal(a) for a in args]


def literal_env(env: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """EnvVar objects with their ``value`` escaped (``valueFrom`` is not expanded)."""
    return [{**e, "value": literal(e["value"])} if "value" in e else dict(e) for e in env]
