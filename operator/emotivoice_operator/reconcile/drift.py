"""Does a live object still hold what we rendered? Pure; decides whether an apply is needed.

The API server adds defaults (probe schemes, termination message paths, cluster IPs...), so a
live object is a superset of what we send. A child needs an apply only when some rendered value
is missing or different: then the operator writes, otherwise it writes nothing, which is what
keeps an idle operator silent on the API.
"""

from __future__ import annotations

import re
from typing import Any

_DECIMAL = re.compile(r"^[0-9]+$")


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    # Quantities and int-or-string ports come back normalized: "2" vs 2.
    if isinstance(want, (int, str)) and isinstance(have, (int, str)):
        return str(want) == str(have) and bool(_DECIMAL.match(str(want)))
    return False


def differences(want: Any, have: Any, path: str = "") -> list[str]:
    """Paths where ``have`` does not hold ``want`` (empty: nothing to apply)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [path or "(root)"]
        out: list[str] = []
        for key, value in want.items():
            if key not in have:
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
