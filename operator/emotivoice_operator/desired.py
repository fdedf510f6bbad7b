"""What an EmotiVoiceService should look like at an instant: pure, shared by the operator's
reconcile and the offline ``render`` command, so both always agree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emotivoice_operator import windows as win
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
) -> DesiredState:
    """Raises ``SpecError`` for a spec that cannot be honoured (naming the field).

    ``requests`` are the warm requests as status holds them (anybody allowed to patch status
    may have written them); only their bounded form reaches the floor.
    """
    spec = parse_spec(raw_spec)
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
    )
    return DesiredState(
        warm_floor=floor,
        manifests=render(spec, ctx),
        active_windows=win.active_windows(windows, now),
        next_window=win.next_window(windows, now),
        warm_requests=honoured,
    )
