"""The Python view of the spec cannot drift from the CRD.

Walks the CRD's schema and the pydantic models side by side: the same field names at every
level, and a field is required in Python exactly when the CRD makes it required or defaults it
(``parse_spec`` applies the CRD's defaults, so Python must not carry defaults of its own), and
every ``enum`` of the CRD is exactly the ``Literal`` of its Python field (and the other way round).
"""

from __future__ import annotations

import copy
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


def _literal_in(annotation: Any) -> set[Any] | None:
    """The values of the Literal inside X, X | None or list[X], if any."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _literal_in(arg)
            if found is not None:
                return found
    return None


def _enum_problem(annotation: Any, schema: dict[str, Any], path: str) -> str | None:
    enum = _sub_schema(schema).get("enum")
    literal = _literal_in(annotation)
    if enum is None and literal is None:
        return None
    if enum is None or literal is None or set(enum) != literal:
        return f"{path}: CRD enum {enum}, Python Literal {sorted(literal or ())}"
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
        enum = _enum_problem(field.annotation, sub, f"{path}.{name}")
        if enum:
            problems.append(enum)
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


def test_every_enum_is_compared() -> None:
    """Each enum of the CRD is met by the walk (so a new one cannot slip past), and a changed
    value on either side is reported."""
    enums = []

    def collect(schema: dict[str, Any], path: str) -> None:
        for name, sub in schema.get("properties", {}).items():
            if "enum" in _sub_schema(sub):
                enums.append(f"{path}.{name}")
            collect(_sub_schema(sub), f"{path}.{name}")

    collect(spec_schema(), "spec")
    assert {
        "spec.model.cache.scope",
        "spec.model.cache.accessMode",
        "spec.model.cache.durability",
        "spec.model.precision",
        "spec.model.loadFormat",
        "spec.server.imagePullPolicy",
        "spec.warmPool.windows.days",
    } <= set(enums)
    schema = copy.deepcopy(spec_schema())
    model = schema["properties"]["model"]["properties"]
    model["precision"]["enum"].append("int8")
    model["cache"]["properties"]["accessMode"]["enum"].remove("ReadWriteOncePod")
    problems = _compare(EmotiVoiceServiceSpec, schema, "spec")
    assert any(p.startswith("spec.model.precision:") for p in problems), problems
    assert any(p.startswith("spec.model.cache.accessMode:") for p in problems), problems
    days = schema["properties"]["warmPool"]["properties"]["windows"]["items"]["properties"]
    days["days"]["items"]["enum"] = ["Mon"]
    problems = _compare(EmotiVoiceServiceSpec, schema, "spec")
    assert any(p.startswith("spec.warmPool.windows.days:") for p in problems), problems
