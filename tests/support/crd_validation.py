"""Validates a resource against the CRD offline: its OpenAPI schema plus its CEL rules.

The real check is the API server's (tests/integration runs the same invalid specs against it);
this one runs in milliseconds without a cluster, so every example and every invalid spec is
also checked by the unit suite. Structural keywords go through jsonschema, the
``x-kubernetes-validations`` rules through cel-python, the way the API server scopes them:
``self`` is the object the rule is attached to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema

from emotivoice_operator.crd.schema import apply_defaults, root_schema

_K8S_KEYWORDS = (
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
)


# The formats the API server checks that our CRDs use: ``date`` (a real calendar date).
_FORMATS = jsonschema.FormatChecker(formats=["date"])


def validate(resource: dict[str, Any]) -> list[str]:
    """Returns the problems, each prefixed with the path of the field; empty when valid."""
    schema = root_schema()
    resource = apply_defaults(schema, resource)
    problems = [
        _describe(err)
        for err in jsonschema.Draft7Validator(_plain(schema), format_checker=_FORMATS).iter_errors(
            resource
        )
    ]
    if problems:
        return problems
    return [f"{path}: {message}" for path, message in _cel_failures(schema, resource, "")]


def _describe(err: jsonschema.ValidationError) -> str:
    """Names the offending field the way the API server does (a missing one included)."""
    parts = list(err.absolute_path)
    if err.validator == "required":
        parts.append(err.message.split("'")[1])
        return f"{_path(parts)}: Required value"
    return f"{_path(parts)}: {err.message}"


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out.lstrip(".") or "(root)"


def _plain(schema: Any) -> Any:
    """The schema without Kubernetes' extensions, which jsonschema does not know."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k not in _K8S_KEYWORDS}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema


_ENV = celpy.Environment()


def _cel_failures(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, str]]:
    for rule in schema.get("x-kubernetes-validations", []):
        program = _ENV.program(_ENV.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            where = path + rule.get("fieldPath", "")
            yield (where.lstrip(".") or "(root)"), rule.get("message", rule["rule"])
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _cel_failures(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _cel_failures(schema["items"], item, f"{path}[{i}]")
