"""The CRD is a usable contract: documented, validated in the schema, and shown in kubectl."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from emotivoice_operator.crd.schema import CRD, spec_schema
from emotivoice_operator.crd.spec import SpecError
from emotivoice_operator.desired import desired_state
from emotivoice_operator.render import Owner
from emotivoice_operator.settings import OperatorSettings
from tests.support.crd_validation import validate
from tests.support.invalid_specs import API_ONLY, CASES, SAME, InvalidCase, valid_resource

ROOT = Path(__file__).resolve().parents[2]


def _fields(schema: dict[str, Any], path: str):
    """Every property of the schema, depth first, with its dotted path."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _fields(sub, f"{path}.{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        yield f"{path}[]", items
        yield from _fields(items, f"{path}[]")


def test_every_spec_field_has_a_description() -> None:
    # Array items are documented by their array; every named field needs its own text.
    missing = [
        path
        for path, sub in _fields(spec_schema(), "spec")
        if not path.endswith("[]") and not sub.get("description")
    ]
    assert missing == []


def test_kubectl_facing_parts() -> None:
    version = CRD["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert "evs" in CRD["spec"]["names"]["shortNames"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["Min"] == ".spec.replicas.min"
    assert columns["Max"] == ".spec.replicas.max"
    assert columns["Floor"] == ".status.warmFloor"
    assert columns["Phase"] == ".status.phase"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_cross_field_rules_are_cel() -> None:
    rules = [
        rule["rule"]
        for _, sub in _fields(spec_schema(), "spec")
        for rule in sub.get("x-kubernetes-validations", [])
    ] + [r["rule"] for r in spec_schema().get("x-kubernetes-validations", [])]
    assert any("self.min <= self.max" in r for r in rules)
    assert any("has(self.cron)" in r for r in rules)
    assert len(rules) >= 5


def test_valid_resource_passes() -> None:
    assert validate(valid_resource()) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_spec_is_rejected_naming_the_field(case) -> None:
    problems = validate(case.resource())
    assert problems, f"{case.id} was accepted"
    assert any(case.field in p for p in problems), problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_same_table_through_the_operators_own_check(case: InvalidCase) -> None:
    """desired_state, on a spec the API server never saw (from disk, an older CRD), refuses each
    case naming the same field, except those marked API_ONLY, which it must accept: the mark
    says the operator relies on the API server there, and a wrong mark fails."""
    body = case.resource()
    owner = Owner(body["metadata"]["name"], "default", "00000000-0000-0000-0000-00000000000a")
    at = datetime(2026, 1, 5, 3, tzinfo=UTC)
    if case.operator == API_ONLY:
        desired_state(body["spec"], owner, at, {}, OperatorSettings())
        return
    with pytest.raises(SpecError) as err:
        desired_state(body["spec"], owner, at, {}, OperatorSettings())
    assert f"spec.{err.value.field}" == (case.field if case.operator == SAME else case.operator)


def test_every_case_is_refused_for_a_reason_of_its_own() -> None:
    """No case repeats another: two cases that draw the same rejection test one thing."""
    seen: dict[tuple[str, ...], str] = {}
    for case in CASES:
        problems = tuple(sorted(validate(case.resource("tts-invalid"))))
        assert problems not in seen, f"{case.id} is refused exactly like {seen.get(problems)}"
        seen[problems] = case.id


EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate_against_the_crd(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    services = [d for d in docs if d["kind"] == CRD["spec"]["names"]["kind"]]
    assert services, f"{path.name} holds no EmotiVoiceService"
    for doc in services:
        assert validate(doc) == [], doc["metadata"]["name"]


def test_warm_requests_in_status_are_bounded_by_the_schema() -> None:
    """status.warmRequests is what the pre-warm ServiceAccount may patch: the API refuses more
    requests than windows, and more replicas than replicas.max can ever be."""
    from emotivoice_operator.crd.schema import root_schema

    root = root_schema()
    requests = root["properties"]["status"]["properties"]["warmRequests"]
    spec = spec_schema()["properties"]
    assert requests["maxProperties"] == spec["warmPool"]["properties"]["windows"]["maxItems"]
    replicas = requests["additionalProperties"]["properties"]["replicas"]
    assert replicas["maximum"] == spec["replicas"]["properties"]["max"]["maximum"]
    assert replicas["minimum"] == 0
    body = valid_resource()
    body["status"] = {
        "warmRequests": {"morning": {"replicas": 5000, "expiresAt": "2099-01-01T00:00:00Z"}}
    }
    assert any("replicas" in p for p in validate(body))
    body["status"] = {
        "warmRequests": {
            f"w{i}": {"replicas": 1, "expiresAt": "2099-01-01T00:00:00Z"} for i in range(21)
        }
    }
    assert validate(body)
