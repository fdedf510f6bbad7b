"""The reference in docs/reference/ covers everything the code can say to a user: every Event
reason the operator posts, every phase and every condition type and reason that
``reconcile/status.py`` writes, and every exit code of the fetch step with its meaning.

The reasons are read from the operator's source (parsed, not run): each call of the pass's Event
poster (``post(type, reason, message)``) or of ``kopf.event``/``info``/``warn``/``exception``. A
reason posted from a new call site, or a new ``ExitCode`` member, fails here until its row is in
the docs, as the CRD is guarded by its own tests.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from emotivoice_fetch.errors import MEANINGS, ExitCode
from emotivoice_operator.reconcile import report

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "operator" / "emotivoice_operator"
STATUS = OPERATOR / "reconcile" / "status.py"
REFERENCE = ROOT / "docs" / "reference"
# The callables an Event reason goes through: the pass's poster, and kopf's own.
POSTERS = {"post", "post_event"}
KOPF_POSTERS = {"event", "info", "warn", "exception"}


def _trees() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(OPERATOR.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _string_constants() -> dict[str, str]:
    """Module-level ``NAME = "text"`` across the operator: reasons kept as constants."""
    out: dict[str, str] = {}
    for _, tree in _trees():
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        out[target.id] = node.value.value
    return out


def phases() -> set[str]:
    """The phases ``compute_status`` sets: each ``phase, message = "Phase", ...``."""
    found = set()
    for node in ast.walk(ast.parse(STATUS.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Tuple)
            and isinstance(node.targets[0].elts[0], ast.Name)
            and node.targets[0].elts[0].id == "phase"
            and isinstance(node.value, ast.Tuple)
            and isinstance(node.value.elts[0], ast.Constant)
        ):
            found.add(node.value.elts[0].value)
    assert found, "no phase assignments found in status.py: teach this test the new shape"
    return found


def _texts(node: ast.expr, where: str, constants: dict[str, str]) -> set[str]:
    """Every string a reason expression can take."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _texts(node.body, where, constants) | _texts(node.orelse, where, constants)
    if isinstance(node, ast.JoinedStr):
        # f"Phase{status['phase']}": a constant prefix and the phase.
        parts = node.values
        if (
            len(parts) == 2
            and isinstance(parts[0], ast.Constant)
            and isinstance(parts[1], ast.FormattedValue)
            and "phase" in ast.unparse(parts[1].value)
        ):
            return {f"{parts[0].value}{phase}" for phase in phases()}
    if isinstance(node, ast.Name) and node.id == "phase":
        return phases()
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        # PHASE_REASONS[status["phase"]]: any value of that module-level table.
        table = getattr(report, node.value.id, None)
        if isinstance(table, dict):
            return {str(v) for v in table.values()}
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    if name in constants:
        return {constants[name]}
    raise AssertionError(f"{where}: cannot tell the reason {ast.unparse(node)!r}; teach this test")


class _Posts(ast.NodeVisitor):
    """Collects the reasons of every Event posted in one module."""

    def __init__(self, path: Path, constants: dict[str, str]) -> None:
        self.path = path
        self.constants = constants
        self.params: list[set[str]] = []
        self.reasons: dict[str, str] = {}

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
        self.params.append(names)
        self.generic_visit(node)
        self.params.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        reason: ast.expr | None = None
        keyword = next((k.value for k in node.keywords if k.arg == "reason"), None)
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called in POSTERS:
            reason = keyword or (node.args[1] if len(node.args) > 1 else None)
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in KOPF_POSTERS
            and isinstance(func.value, ast.Name)
            and func.value.id == "kopf"
        ):
            reason = keyword
        else:
            return
        where = f"{self.path.relative_to(ROOT)}:{node.lineno}"
        assert reason is not None, f"{where}: an Event posted without a reason the test can read"
        if isinstance(reason, ast.Name) and self.params and reason.id in self.params[-1]:
            return  # a poster passing its caller's reason on (handlers._poster)
        for text in _texts(reason, where, self.constants):
            self.reasons.setdefault(text, where)


def posted_reasons() -> dict[str, str]:
    """Every Event reason the operator can post, with one place that posts it."""
    constants = _string_constants()
    found: dict[str, str] = {}
    for path, tree in _trees():
        visitor = _Posts(path, constants)
        visitor.visit(tree)
        for reason, where in visitor.reasons.items():
            found.setdefault(reason, where)
    return found


def conditions() -> dict[str, set[str]]:
    """Every condition type ``compute_status`` writes, with the reasons it can carry."""
    out: dict[str, set[str]] = {}
    constants = _string_constants()
    for node in ast.walk(ast.parse(STATUS.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_condition":
            type_ = node.args[0]
            if isinstance(type_, ast.Name) and type_.id in constants:  # a module constant
                type_ = ast.Constant(constants[type_.id])
            assert isinstance(type_, ast.Constant), ast.unparse(node)
            out[type_.value] = _texts(node.args[2], f"status.py:{node.lineno}", {})
    return out


def _page(name: str) -> str:
    return (REFERENCE / name).read_text(encoding="utf-8")


def test_the_reasons_are_found_in_the_code() -> None:
    """The parse finds the posters at all (a refactor that hides them fails here, not silently)."""
    reasons = posted_reasons()
    assert {"ColdStart", "NameConflict", "WindowMissed", "PhaseReady"} <= set(reasons)
    assert len(reasons) >= 15
    assert {"Ready", "Progressing", "Failed"} <= phases()
    assert {"SpecValid", "Ready", "CacheReachable"} <= set(conditions())
    # Every reason report.py declares is one some call site posts (none declared and unused).
    assert set(report.REASONS) <= set(reasons)


@pytest.mark.parametrize("reason", sorted(posted_reasons()))
def test_every_event_reason_is_in_the_reference(reason: str) -> None:
    where = posted_reasons()[reason]
    assert f"| `{reason}` |" in _page("events.md"), (
        f"Event reason {reason} (posted at {where}) has no row in docs/reference/events.md"
    )


def test_every_phase_is_in_the_reference() -> None:
    page = _page("conditions.md")
    missing = [p for p in sorted(phases()) if f"| `{p}` |" not in page]
    assert not missing, f"phases with no row in docs/reference/conditions.md: {missing}"


def test_every_condition_type_and_reason_is_in_the_reference() -> None:
    page = _page("conditions.md")
    missing = [
        f"{type_}: {reason}"
        for type_, reasons in sorted(conditions().items())
        for reason in sorted(reasons | {type_})
        if f"`{reason}`" not in page
    ] + [t for t in sorted(conditions()) if f"| `{t}` |" not in page]
    assert not missing, f"not in docs/reference/conditions.md: {missing}"


def test_every_fetch_exit_code_is_in_the_reference_with_its_meaning() -> None:
    rows = {
        line.split("|")[1].strip(): line
        for line in _page("fetch-exit-codes.md").splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    }
    assert set(MEANINGS) == set(ExitCode), "errors.MEANINGS must name every ExitCode"
    for code in ExitCode:
        row = rows.get(str(int(code)))
        assert row is not None, f"exit {int(code)} has no row in docs/reference/fetch-exit-codes.md"
        assert f"`{code.name}`" in row, f"exit {int(code)}'s row does not name {code.name}"
        assert MEANINGS[code] in row, f"exit {int(code)}'s row does not say {MEANINGS[code]!r}"
    assert set(rows) == {str(int(c)) for c in ExitCode}, "a row for a code the step never uses"
