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
    """Raises ``SpecError`` for a spec that cannot be honoured (naming the field)."""
    spec = parse_spec(raw_spec)
    windows = win.parse_windows(spec.warm_pool) if spec.warm_pool else []
    floor = win.warm_floor(spec.replicas.min, windows, now, requests)
    ctx = RenderContext(
        owner, floor, settings.server_image, settings.extra_tolerations, settings.prewarm_image
    )
    return DesiredState(
        warm_floor=floor,
        manifests=render(spec, ctx),
        active_windows=win.active_windows(windows, now),
        next_window=win.next_window(windows, now),
    )
