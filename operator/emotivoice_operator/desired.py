"""What an EmotiVoiceService should look like at an instant: pure, shared by the operator's
reconcile and the offline ``render`` command, so both always agree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emotivoice_operator import windows as win
from emotivoice_operator.cache_scope import ScopeDecision, decide_scope
from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.render import Owner, RenderContext, render
from emotivoice_operator.settings import OperatorSettings


@dataclass(frozen=True)
class DesiredState:
    warm_floor: int
    manifests: list[dict[str, Any]]
    active_windows: list[win.Window]
    next_window: tuple[win.Window, datetime] | None
    # The warm requests honoured now, bounded by the spec (see windows.bound_requests).
    warm_requests: dict[str, tuple[int, datetime]]
    # The cache scope in force, why, and any warning about it.
    cache: ScopeDecision
    # Most replicas the spec can ever ask for (HPA maxReplicas, every window and request):
    # PerReplica claims of ordinals from here on belong to replicas that never come back.
    max_replicas: int

    @property
    def next_window_text(self) -> str:
        """The next start in its window's own zone, as status and kubectl show it."""
        if not self.next_window:
            return ""
        window, start = self.next_window
        return f"{window.name} {win.format_local(start, window.zone)}"


def desired_state(
    raw_spec: dict[str, Any],
    owner: Owner,
    now: datetime,
    requests: Mapping[str, tuple[int, datetime]],
    settings: OperatorSettings,
    *,
    shared_claim_exists: bool = False,
) -> DesiredState:
    """Raises ``SpecError`` for a spec that cannot be honoured (naming the field).

    ``requests`` are the warm requests as status holds them (anybody allowed to patch status
    may have written them); only their bounded form reaches the floor. ``shared_claim_exists``:
    the claim NAME-model exists and is ours, which keeps an unset cache scope Shared.
    """
    spec = parse_spec(raw_spec)
    cache = decide_scope(spec, owner.name, shared_claim_exists)
    windows = win.parse_windows(spec.warm_pool) if spec.warm_pool else []
    honoured = win.bound_requests(windows, spec.replicas.max, requests, now)
    floor = win.warm_floor(spec.replicas.min, windows, now, honoured)
    ctx = RenderContext(
        owner,
        floor,
        settings.server_image,
        settings.extra_tolerations,
        settings.prewarm_image,
        default_server_cpu_image=settings.server_cpu_image,
        cache_scope=cache.scope,
    )
    return DesiredState(
        warm_floor=floor,
        manifests=render(spec, ctx),
        active_windows=win.active_windows(windows, now),
        next_window=win.next_window(windows, now),
        warm_requests=honoured,
        cache=cache,
        # The CRD keeps windows (and so bounded requests) <= replicas.max; the floor guards it.
        max_replicas=max(spec.replicas.max, floor),
    )
