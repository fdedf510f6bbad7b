"""The kubelet's ``$(VAR)`` expansion of command, args and env values, ported line by line.

From Kubernetes' third_party/forked/golang/expansion/expand.go (``Expand`` and
``tryReadVariableName``), with the kubelet's mapping: a defined variable gives its value, an
undefined one stays ``$(NAME)``. The render tests run rendered values through it to show what a
container's process receives; the real node (containerd + kubelet) checks the same end to end.
"""

from __future__ import annotations

from collections.abc import Mapping


def _read_variable_name(text: str) -> tuple[str, bool, int]:
    if text[0] == "$":
        return "$", False, 1
    if text[0] == "(":
        for i in range(1, len(text)):
            if text[i] == ")":
                return text[1:i], True, i + 1
        return "$(", False, 1
    return "$" + text[0], False, 1


def expand(value: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(value):
        if value[cursor] == "$" and cursor + 1 < len(value):
            out.append(value[checkpoint:cursor])
            read, is_var, advance = _read_variable_name(value[cursor + 1 :])
            out.append(env.get(read, f"$({read})") if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + value[checkpoint:]
