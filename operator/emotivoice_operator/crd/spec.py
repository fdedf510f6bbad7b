"""Typed, read-only view of an EmotiVoiceService spec.

The CRD (crds/emotivoiceservice.yaml) is the contract; these models only give it Python types.
They carry no defaults of their own: ``parse_spec`` fills the CRD's defaults first, so a field
the CRD defaults is required here and a field it leaves optional is ``None`` here.
tests/operator/test_spec_matches_crd.py fails if a field exists on one side only, or if the
required/optional split disagrees with the CRD's defaults.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from emotivoice_operator.crd.schema import apply_defaults, spec_schema

Quantity = int | str
Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# The CRD's day names in ``date.weekday()`` order (Monday first), for display.
DAY_NAMES: tuple[Day, ...] = get_args(Day)


class SpecError(ValueError):
    """The spec passed the API server's schema but cannot be honoured (or was never checked)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"spec.{field}: {problem}")
        self.field = field
        self.problem = problem


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class CredentialsSecret(_Model):
    name: str
    access_key_id_key: str
    secret_access_key_key: str


class ModelSource(_Model):
    uri: str
    endpoint: str | None = None
    region: str
    path_style: bool | None = None
    credentials_secret: CredentialsSecret | None = None
    checksums: dict[str, str] | None = None
    checksum_manifest: str | None = None
    concurrency: int

    @property
    def uses_path_style(self) -> bool:
        """Self-hosted stores (an explicit endpoint) nearly always need path-style addressing."""
        return self.path_style if self.path_style is not None else self.endpoint is not None


CacheScope = Literal["PerReplica", "Shared", "Ephemeral"]


class ModelCache(_Model):
    # Unset: decided by the operator (emotivoice_operator.cache_scope), not by a CRD default.
    scope: CacheScope | None = None
    size: Quantity
    storage_class_name: str | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]
    retain_on_delete: bool
    durability: Literal["boot", "fsync"] | None = None


class ModelSpec(_Model):
    source: ModelSource
    cache: ModelCache
    precision: Literal["auto", "fp32", "fp16", "bf16"]
    load_format: Literal["converted", "released"]


class Resources(_Model):
    requests: dict[str, Quantity]
    limits: dict[str, Quantity]


class Warmup(_Model):
    # Unset phrases/prompts: the server's defaults (emotivoice_server.warmup), their one home.
    phrases: list[str] | None = None
    voices: list[str] | None = None
    prompts: list[str] | None = None


class ServerSpec(_Model):
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"]
    port: int
    gpus: int
    resources: Resources
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    env: list[dict[str, Any]] | None = None
    startup_timeout_seconds: int
    drain_seconds: int
    warmup: Warmup


class ReplicasSpec(_Model):
    min: int
    max: int
    target_cpu_utilization_percentage: int = Field(alias="targetCPUUtilizationPercentage")
    scale_down_delay_seconds: int


class CapacitySpec(_Model):
    """``windows[].capacity``: placeholder pods that hold nodes ahead of the window."""

    placeholders: bool
    node_lead: str


class WarmWindowSpec(_Model):
    name: str
    days: list[Day] | None = None
    start: str | None = None
    end: str | None = None
    cron: str | None = None
    duration: str | None = None
    lead_time: str
    replicas: int
    time_zone: str | None = None
    dates_only: bool
    capacity: CapacitySpec | None = None


class DateSpec(_Model):
    """One entry of ``warmPool.dates`` or of an EmotiVoiceCalendar's ``spec.dates``."""

    date: str
    name: str | None = None
    windows: list[str] | None = None


class AutoLeadTimeSpec(_Model):
    initial: str
    min: str
    max: str
    margin: str
    min_starts: int


class PrePullSpec(_Model):
    """``warmPool.prePull``: the server image pulled onto the pool's nodes ahead of a window."""

    enabled: bool
    lead: str
    initial_lead: str
    gpu_node_selector: dict[str, str]


class WarmPoolSpec(_Model):
    time_zone: str
    windows: list[WarmWindowSpec]
    auto_lead_time: AutoLeadTimeSpec
    calendars: list[str] | None = None
    dates: list[DateSpec] | None = None
    pre_pull: PrePullSpec | None = None


class FallbackSpec(_Model):
    service: str
    wake_on_request: bool
    wake_hold: str


class EmotiVoiceServiceSpec(_Model):
    model: ModelSpec
    server: ServerSpec
    replicas: ReplicasSpec
    warm_pool: WarmPoolSpec | None = None
    fallback: FallbackSpec | None = None


def parse_spec(raw: dict[str, Any]) -> EmotiVoiceServiceSpec:
    """Defaults ``raw`` from the CRD and returns its typed view, or raises ``SpecError``."""
    try:
        return EmotiVoiceServiceSpec.model_validate(apply_defaults(spec_schema(), raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(first["loc"])
        raise SpecError(field, first["msg"]) from None


def _field_path(loc: tuple[int | str, ...]) -> str:
    """``warmPool.windows[0].days[1]``: list indices in brackets, as every other operator error
    (and the API server) names them."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "(root)"
