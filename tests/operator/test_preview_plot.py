"""The preview's plot: it renders a PNG, and the figure holds one span per window occurrence, one
mark per DST change and per pre-warm run (counted on the figure's artists, not its pixels, which
vary with the fonts installed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from emotivoice_operator.preview import plot
from emotivoice_operator.preview.recorded import read_recorded
from emotivoice_operator.preview.timeline import Preview, build_preview
from emotivoice_operator.settings import OperatorSettings
from tests.support.preview_cases import CASES, Case

pytest.importorskip("matplotlib")


def _preview(case: Case) -> Preview:
    return build_preview(case.body, case.start, 7, OperatorSettings())


def _gids(fig: Any, prefix: str) -> list[Any]:
    """Every artist of the figure whose gid starts with ``prefix``."""
    return [a for a in fig.findobj() if (a.get_gid() or "").startswith(prefix)]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_figure_has_a_span_per_occurrence_and_a_mark_per_dst_change(
    case: Case, tmp_path: Path
) -> None:
    p = _preview(case)
    fig = plot.figure(p)
    assert len(_gids(fig, plot.GID_WINDOW)) == case.occurrences
    assert len(_gids(fig, plot.GID_DST)) == case.transitions
    for w in p.windows:
        mine = [o for o in p.occurrences if o.window == w.name]
        assert len(_gids(fig, plot.GID_WINDOW + w.name)) == len(mine)
        assert len(_gids(fig, plot.GID_LEAD + w.name)) == (len(mine) if w.lead else 0)
    runs = sum(len(line.get_xdata()) for line in _gids(fig, plot.GID_PREWARM))
    assert runs == sum(len(f.instants) for f in p.firings)
    skipped = _gids(fig, plot.GID_SKIPPED)
    assert sum(len(line.get_xdata()) for line in skipped) == sum(
        1 for f in p.firings if not f.instants
    )
    ax = fig.axes[0]
    assert p.zone.key in ax.get_xlabel()
    assert p.name in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(any(lab.startswith(f"{w.name}:") for lab in labels) for w in p.windows)
    assert any("replica-hours" in lab for lab in labels)

    path = plot.save(fig, tmp_path / "out" / "week.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (12 * plot.DPI, round(5.2 * plot.DPI))


def test_the_floor_line_is_the_previews_floor() -> None:
    p = _preview(CASES["shanghai"])
    (line,) = _gids(plot.figure(p), plot.GID_FLOOR)
    assert list(line.get_ydata()) == [s.floor for s in p.segments] + [p.segments[-1].floor]
    (flat,) = _gids(plot.figure(p), plot.GID_FLAT)
    assert list(flat.get_ydata()) == [p.peak_floor, p.peak_floor]


def test_recorded_cold_starts_and_misses_are_overlaid() -> None:
    p = _preview(CASES["shanghai"])
    recorded = read_recorded(
        {
            "coldStarts": {"recent": [
                {"pod": "a", "at": "2025-03-04T00:50:00Z", "seconds": 42, "inWindow": True},
                {"pod": "b", "at": "2025-03-05T05:00:00Z", "seconds": 12, "inWindow": False},
                {"pod": "c", "at": "2025-03-06T05:00:00Z", "seconds": 11},
                {"pod": "old", "seconds": 9},  # no time: not placed
                {"pod": "before", "at": "2025-01-01T00:00:00Z", "seconds": 9},
            ]},
            "misses": {"recent": [
                {"window": "morning", "at": "2025-03-04T01:00:00Z", "short": 1},
                {"window": "morning", "at": "2025-03-05T01:00:00Z"},
            ]},
        }
    )  # fmt: skip
    fig = plot.figure(p, recorded)
    dots = _gids(fig, plot.GID_COLD_STARTS)
    assert sorted(len(d.get_offsets()) for d in dots) == [1, 2]  # inside / outside windows
    (crosses,) = _gids(fig, plot.GID_MISSES)
    assert [y for _, y in crosses.get_offsets()] == [3, 3]  # at the morning floor they missed
    assert len(fig.axes) == 2 and "seconds to Ready" in fig.axes[1].get_ylabel()
    assert len(_gids(plot.figure(p, read_recorded({})), plot.GID_COLD_STARTS)) == 0


def test_without_matplotlib_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plot.PlotUnavailableError, match=r"'preview' extra.*\[preview\]"):
        plot.figure(_preview(CASES["berlin"]))
