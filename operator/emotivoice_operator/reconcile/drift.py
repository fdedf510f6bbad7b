"""Does a live object still hold what we rendered? Pure; decides whether an apply is needed.

The API server adds defaults (probe schemes, termination message paths, cluster IPs...), so a
live object is a superset of what we send. A child needs an apply only when some rendered value
is missing or different: then the operator writes, otherwise it writes nothing, which is what
keeps an idle operator silent on the API.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

_QUANTITY = re.compile(r"^[+-]?[0-9.]+([eE][+-]?[0-9]+|[numkMGTPE]i?|Ki)?$")


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    if isinstance(value, str) and not _QUANTITY.match(value):
        return None
    try:
        return parse_quantity(value)
    except ValueError:
        return None


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    # The API server returns quantities in canonical form ("0.5" -> "500m", "2" -> 2).
    w, h = _quantity(want), _quantity(have)
    return w is not None and w == h


def differences(want: Any, have: Any, path: str = "") -> list[str]:
    """Paths where ``have`` does not hold ``want`` (empty: nothing to apply)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [path or "(root)"]
        out: list[str] = []
        for key, value in want.items():
            if key not in have:
                # The API server drops empty lists and maps: absent is what we asked for.
                if value not in ([], {}):
                    out.append(f"{path}.{key}")
            else:
                out += differences(value, have[key], f"{path}.{key}")
        return out
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return [path]
        out = []
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            out += differences(w, h, f"{path}[{i}]")
        return out
    return [] if _same_scalar(want, have) else [path]


_INDEXED = re.compile(r"^(.*?)((?:\[[0-9]+\])*)$")
_MISSING = object()


def value_at(obj: Any, path: str) -> Any:
    """The value at a path as ``differences`` spells it (``.spec.ports``, ``.a.b[0].c``; keys
    may hold dots, as label keys do); None when it does not resolve."""
    tokens = path.lstrip(".").split(".") if path and path != "(root)" else []
    current: Any = obj
    i = 0
    while i < len(tokens):
        for j in range(i + 1, len(tokens) + 1):  # the shortest key that exists wins
            match = _INDEXED.match(".".join(tokens[i:j]))
            assert match is not None  # the pattern matches every string
            key, indexes = match.group(1), match.group(2)
            if isinstance(current, dict) and key in current:
                value = current[key]
                for index in re.findall(r"\[([0-9]+)\]", indexes):
                    if not isinstance(value, list) or int(index) >= len(value):
                        return None
                    value = value[int(index)]
                current, i = value, j
                break
        else:
            return None
    return current
