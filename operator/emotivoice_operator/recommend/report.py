"""The recommendation as text: what was read, the ``warmPool`` block to paste, and the numbers
beside it (coverage, replica-hours against today's spec and a flat floor, the backtest)."""

from __future__ import annotations

import re

import yaml

from emotivoice_operator.recommend.recommendation import Options, Recommendation
from emotivoice_operator.recommend.score import Score

_HHMM = re.compile(r"^[0-9]{2}:[0-9]{2}$")


class _Dumper(yaml.SafeDumper):
    """Block style, but a list of plain strings (a window's days) on one line."""


def _list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(x, str) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if _HHMM.fullmatch(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(str, _str)


def to_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _local(r: Recommendation, minute: int) -> str:
    return r.history.instant(minute).astimezone(r.history.zone).strftime("%Y-%m-%d %H:%M %Z")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def render(r: Recommendation, options: Options, who: str, selector: str) -> str:
    h, p = r.history, r.proposal
    lines = [
        f"# {who}: {h.weeks} weeks of history, {_local(r, 0)} to {_local(r, h.minutes)}",
        f"#   series: {{{selector}}}; {h.seconds_per_request:.2f} busy s per served request "
        f"(refused requests count as that much demand)",
        f"#   target utilisation {options.target:.0%}, {options.slot_minutes}-minute slots, "
        f"replicas.min {r.min_replicas}, replicas.max {r.max_replicas}",
        f"#   lead time {r.lead.text}: {r.lead.basis}",
    ]
    if p.estimate.uncapped_peak > r.max_replicas:
        lines.append(
            f"#   the peak needs {p.estimate.uncapped_peak} replicas but replicas.max is "
            f"{r.max_replicas}: the windows stop at {r.max_replicas}; raise replicas.max"
        )
    for day, why in p.skipped.items():
        note = "; add it to the calendar" if why == "looks like a holiday" else ""
        lines.append(f"#   left out {day.isoformat()} ({day:%a}): {why}{note}")
    lines.append("")
    lines.append(to_yaml({"warmPool": p.pool}).rstrip())
    lines.append("")
    lines += _scores(r)
    return "\n".join(lines) + "\n"


def _scores(r: Recommendation) -> list[str]:
    p = r.proposal
    out = [
        "# coverage: share of requests that arrived with a warm floor >= ceil(demand at 100%)",
        "# cost: warm replica-hours of the floor (replicas.min included), per week",
        f"# {'':<28}{'coverage':>10}{'replica-h/week':>16}{'vs proposed':>13}",
        _row("proposed", p.score, p.score),
        _row("today's spec", r.today, p.score),
        _row(f"flat at the peak ({int(p.floor.max())})", r.flat_peak, p.score),
    ]
    if r.backtest is not None and r.backtest_today is not None:
        b = r.backtest
        out += [
            f"# backtest: proposed from the first {r.history.weeks - 1} weeks, scored on the "
            "last (held out)",
            _row("proposed (held-out week)", b.score, b.score),
            _row("today's spec (same week)", r.backtest_today, b.score),
        ]
    else:
        out.append("# backtest: needs 2 weeks or more (one to propose from, one to score on)")
    return out


def _row(label: str, s: Score, ref: Score) -> str:
    return (
        f"# {label:<28}{_pct(s.coverage):>10}{s.per_week:>16.1f}"
        f"{_ratio(s.per_week, ref.per_week):>13}"
    )
