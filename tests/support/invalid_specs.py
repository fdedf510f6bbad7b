"""Invalid EmotiVoiceServices, each with the field its rejection must name.

One table for every place that refuses a spec: the offline schema test and the operator's own
check, ``desired_state`` (tests/operator/test_crd_schema.py), and the API server
(tests/integration/test_operator.py), so all prove the same thing: a bad manifest is refused with
a message that tells the user which field to fix. A case marked ``API_ONLY`` is one the operator
does not check again (it trusts what the API server admitted); the operator's test proves the
mark true, so a check added to the operator must update the table.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from emotivoice_operator.crd import KIND, api_version


def valid_resource(name: str = "tts-valid") -> dict[str, Any]:
    return {
        "apiVersion": api_version(),
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "model": {"source": {"uri": "s3://models/emotivoice/v1"}},
            "replicas": {"min": 1, "max": 3},
            "warmPool": {
                "timeZone": "Asia/Shanghai",
                "windows": [
                    {
                        "name": "morning",
                        "days": ["Mon"],
                        "start": "09:00",
                        "end": "12:00",
                        "replicas": 2,
                    }
                ],
            },
        },
    }


@dataclass(frozen=True)
class InvalidCase:
    id: str
    # Dotted path -> new value; a value of DELETE removes the key.
    changes: dict[str, Any]
    # The field the rejection message must name.
    field: str
    # The field desired_state's SpecError names: SAME as ``field``, another one (where the CRD's
    # message is a CEL sentence), or API_ONLY.
    operator: str = "same"

    def resource(self, name: str = "tts-invalid") -> dict[str, Any]:
        res = valid_resource(name)
        for path, value in self.changes.items():
            _set(res, path, value)
        return res


DELETE = object()
SAME = "same"
API_ONLY = "api-only"


def _set(obj: Any, path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        obj = obj[int(key)] if isinstance(obj, list) else obj.setdefault(key, {})
    last = keys[-1]
    if value is DELETE:
        del obj[last]
    elif isinstance(obj, list):
        obj[int(last)] = copy.deepcopy(value)
    else:
        obj[last] = copy.deepcopy(value)


W0 = "spec.warmPool.windows.0"

CASES = [
    InvalidCase(
        "uri-not-s3",
        {"spec.model.source.uri": "https://bucket/model"},
        "spec.model.source.uri",
        operator=API_ONLY,
    ),
    InvalidCase(
        "endpoint-without-scheme",
        {"spec.model.source.endpoint": "minio:9000"},
        "spec.model.source.endpoint",
        operator=API_ONLY,
    ),
    InvalidCase(
        "checksum-not-hex",
        {"spec.model.source.checksums": {"g_00140000": "abc"}},
        "spec.model.source.checksums",
        operator=API_ONLY,
    ),
    InvalidCase(
        "access-mode-unknown",
        {"spec.model.cache.accessMode": "ReadOnlyMany"},
        "spec.model.cache.accessMode",
    ),
    InvalidCase(
        "cache-scope-unknown", {"spec.model.cache.scope": "PerNode"}, "spec.model.cache.scope"
    ),
    InvalidCase(
        "ephemeral-cache-retained",
        {"spec.model.cache.scope": "Ephemeral", "spec.model.cache.retainOnDelete": True},
        "spec.model.cache.retainOnDelete",
        operator=API_ONLY,
    ),
    InvalidCase(
        "shared-one-pod-claim-for-many-replicas",
        {"spec.model.cache.scope": "Shared", "spec.model.cache.accessMode": "ReadWriteOncePod"},
        "spec.model.cache.accessMode",
    ),
    InvalidCase("precision-unknown", {"spec.model.precision": "int8"}, "spec.model.precision"),
    InvalidCase(
        "durability-unknown", {"spec.model.cache.durability": "sync"}, "spec.model.cache.durability"
    ),
    InvalidCase("port-privileged", {"spec.server.port": 80}, "spec.server.port", operator=API_ONLY),
    InvalidCase(
        "drain-negative",
        {"spec.server.drainSeconds": -1},
        "spec.server.drainSeconds",
        operator=API_ONLY,
    ),
    InvalidCase(
        "drain-too-long",
        {"spec.server.drainSeconds": 301},
        "spec.server.drainSeconds",
        operator=API_ONLY,
    ),
    InvalidCase("min-negative", {"spec.replicas.min": -1}, "spec.replicas.min", operator=API_ONLY),
    InvalidCase(
        "min-above-max",
        {"spec.replicas.min": 5, "spec.replicas.max": 2},
        "replicas.min must be less than or equal to replicas.max",
        operator=API_ONLY,
    ),
    InvalidCase("window-above-max", {f"{W0}.replicas": 9}, "spec.warmPool", operator=API_ONLY),
    InvalidCase(
        "window-start-and-cron",
        {f"{W0}.cron": "0 9 * * *", f"{W0}.duration": "3h"},
        "spec.warmPool.windows[0]",
    ),
    InvalidCase(
        "window-without-times",
        {f"{W0}.start": DELETE, f"{W0}.end": DELETE},
        "spec.warmPool.windows[0]",
    ),
    InvalidCase(
        "window-empty",
        {f"{W0}.end": "09:00"},
        "start and end must differ",
        operator="spec.warmPool.windows[0].end",
    ),
    InvalidCase("window-hour-25", {f"{W0}.start": "25:00"}, "spec.warmPool.windows[0].start"),
    InvalidCase("window-day-name", {f"{W0}.days": ["Monday"]}, "spec.warmPool.windows[0].days[0]"),
    InvalidCase(
        "lead-time-words", {f"{W0}.leadTime": "10 minutes"}, "spec.warmPool.windows[0].leadTime"
    ),
    InvalidCase(
        "time-zone-garbage", {"spec.warmPool.timeZone": "Not a zone!"}, "spec.warmPool.timeZone"
    ),
    InvalidCase("model-missing", {"spec.model": DELETE}, "spec.model"),
    InvalidCase(
        "date-february-30",
        {"spec.warmPool.dates": [{"date": "2027-02-30"}]},
        "spec.warmPool.dates[0].date",
    ),
    InvalidCase(
        "date-format",
        {"spec.warmPool.dates": [{"date": "24.12.2027"}]},
        "spec.warmPool.dates[0].date",
    ),
    InvalidCase(
        "date-year-2100",
        {"spec.warmPool.dates": [{"date": "2100-01-01"}]},
        "spec.warmPool.dates[0].date",
    ),
    InvalidCase(
        "date-names-unknown-window",
        {"spec.warmPool.dates": [{"date": "2027-12-24", "windows": ["evening"]}]},
        "not in warmPool.windows",
        operator="spec.warmPool.dates[0].windows[0]",
    ),
    InvalidCase(
        "fallback-itself",
        {"spec.fallback": {"service": "tts-invalid"}},
        "spec.fallback.service names this service itself",
        operator="spec.fallback.service",
    ),
    InvalidCase(
        "fallback-in-another-namespace",
        {"spec.fallback": {"service": "voice/tts-cpu"}},
        "spec.fallback.service",
    ),
    InvalidCase(
        "fallback-hold-words",
        {"spec.fallback": {"service": "tts-cpu", "wakeHold": "a while"}},
        "spec.fallback.wakeHold",
    ),
    InvalidCase(
        "name-too-long",
        {"metadata.name": "a" * 27},
        "metadata.name must be at most 26 characters",
        operator=API_ONLY,
    ),
]
