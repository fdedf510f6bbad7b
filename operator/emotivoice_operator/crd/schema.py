"""Loads the CRD shipped with the package and applies its defaults the way the API server does.

Objects read from the API server already carry the schema's defaults; manifests read from disk
(examples, ``cli render``) do not. Applying the same defaults here keeps one source of truth for
them: the CRD, never a second copy in Python.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CRD_PATH = Path(__file__).with_name("emotivoiceservice.yaml")


@cache
def _load_crd() -> dict[str, Any]:
    with CRD_PATH.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


CRD: dict[str, Any] = _load_crd()
GROUP: str = CRD["spec"]["group"]
KIND: str = CRD["spec"]["names"]["kind"]
PLURAL: str = CRD["spec"]["names"]["plural"]
VERSION: str = next(v["name"] for v in CRD["spec"]["versions"] if v.get("storage"))


# EmotiVoiceCalendar: cluster-scoped dates that services name in spec.warmPool.calendars (same
# group and version).
CALENDAR_CRD_PATH = Path(__file__).with_name("emotivoicecalendar.yaml")
with CALENDAR_CRD_PATH.open(encoding="utf-8") as _f:
    CALENDAR_CRD: dict[str, Any] = yaml.safe_load(_f)
CALENDAR_KIND: str = CALENDAR_CRD["spec"]["names"]["kind"]
CALENDAR_PLURAL: str = CALENDAR_CRD["spec"]["names"]["plural"]


def api_version() -> str:
    return f"{GROUP}/{VERSION}"


def root_schema() -> dict[str, Any]:
    version = next(v for v in CRD["spec"]["versions"] if v["name"] == VERSION)
    return version["schema"]["openAPIV3Schema"]


def spec_schema() -> dict[str, Any]:
    return root_schema()["properties"]["spec"]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Returns a copy of ``value`` with the schema's defaults filled in, recursively.

    Mirrors structural-schema defaulting: a missing property with a ``default`` gets that default
    (itself defaulted further), then every present object is descended into.
    """
    value = copy.deepcopy(value)
    return _default(schema, value)


def _default(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        if props:
            for name, sub in props.items():
                if name not in value and "default" in sub:
                    value[name] = copy.deepcopy(sub["default"])
                if name in value:
                    value[name] = _default(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                if not props or key not in props:
                    value[key] = _default(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [_default(schema["items"], item) for item in value]
    return value
