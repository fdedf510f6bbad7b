"""The Python view of the spec cannot drift from the CRD.

Walks the CRD's schema and the pydantic models side by side: the same field names at every
level, and a field is required in Python exactly when the CRD makes it required or defaults it
(``parse_spec`` applies the CRD's defaults, so Python must not carry defaults of its own).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from emotivoice_operator.crd.schema import spec_schema
from emotivoice_operator.crd.spec import EmotiVoiceServiceSpec


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class inside X, X | None, list[X] or dict[str, X], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None


def _sub_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return schema.get("items", schema) if schema.get("type") == "array" else schema


def _compare(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    for name in sorted(set(props) - set(fields)):
        problems.append(f"{path}.{name}: in the CRD, missing in {model.__name__}")
    for name in sorted(set(fields) - set(props)):
        problems.append(f"{path}.{name}: in {model.__name__}, missing in the CRD")
    for name in sorted(set(props) & set(fields)):
        field, sub = fields[name], props[name]
        crd_required = name in required or "default" in sub
        if field.is_required() != crd_required:
            problems.append(
                f"{path}.{name}: required in Python={field.is_required()}, "
                f"required or defaulted in the CRD={crd_required}"
            )
        if not field.is_required() and field.default is not None:
            problems.append(
                f"{path}.{name}: Python default {field.default!r}: defaults belong in the CRD"
            )
        nested = _model_in(field.annotation)
        if nested:
            problems += _compare(nested, _sub_schema(sub), f"{path}.{name}")
        elif _sub_schema(sub).get("properties") and not _sub_schema(sub).get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            # Pass-through core/v1 objects (env, tolerations) are typed as plain dicts.
            problems.append(f"{path}.{name}: the CRD has sub-fields, Python has no model for them")
    return problems


def test_python_spec_matches_crd_field_for_field() -> None:
    assert _compare(EmotiVoiceServiceSpec, spec_schema(), "spec") == []


def test_drift_is_detected() -> None:
    """The comparison itself works: a field missing on either side is reported."""
    schema = spec_schema()
    extra = {**schema, "properties": {**schema["properties"], "newField": {"type": "string"}}}
    assert any("newField" in p for p in _compare(EmotiVoiceServiceSpec, extra, "spec"))
    fewer = {
        **schema,
        "properties": {k: v for k, v in schema["properties"].items() if k != "server"},
    }
    assert any(".server" in p for p in _compare(EmotiVoiceServiceSpec, fewer, "spec"))
