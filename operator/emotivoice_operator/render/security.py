"""Security contexts shared by every pod the operator creates: non-root, no privileges."""

from __future__ import annotations

from typing import Any

UID = 1000  # the non-root user of the server image (server/Dockerfile)


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        # Group ownership of the model volume, so the non-root fetch step can write to it.
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
