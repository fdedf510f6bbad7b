"""What the indexes keep of a watched object, and which of two copies is newer."""

from __future__ import annotations

import json

from emotivoice_operator.controller.cache import Snapshot, compact, first, newer, pack, unpacked
from emotivoice_operator.reconcile.ownership import is_ours
from emotivoice_operator.render import names


def retained_claim() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "tts-model",
            "resourceVersion": "7",
            "labels": {names.LABEL_INSTANCE: "tts"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "a": "b"},
            "managedFields": [
                {"manager": names.FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": {}}}
            ],
        },
        "spec": {"resources": {"requests": {"storage": "1Gi"}}},
    }


def test_compact_drops_field_sets_but_keeps_who_applied() -> None:
    live = retained_claim()
    kept = compact(live)
    assert kept["metadata"]["managedFields"] == [
        {"manager": names.FIELD_MANAGER, "operation": "Apply"}
    ]
    assert kept["metadata"]["annotations"] == {"a": "b"}
    # A retained claim (no owner reference) is known as ours by its field manager: still so.
    assert is_ours(kept, "some-uid", "tts") and is_ours(live, "some-uid", "tts")
    assert "fieldsV1" in live["metadata"]["managedFields"][0]  # the watched body is not changed


def test_newer_compares_resource_versions_and_prefers_the_second_when_it_cannot() -> None:
    old, new = retained_claim(), retained_claim()
    new["metadata"]["resourceVersion"] = "12"
    assert newer(new, old) is new and newer(old, new) is new
    opaque = retained_claim()
    opaque["metadata"]["resourceVersion"] = "abc"
    assert newer(old, opaque) is opaque
    assert newer(None, old) is old and newer(old, None) is old


def test_snapshot_finds_children_by_kind_and_name() -> None:
    claim = retained_claim()
    snap = Snapshot(body=None, children=[claim])
    assert snap.child("PersistentVolumeClaim", "tts-model") is claim
    assert snap.child("Service", "tts-model") is None
    assert snap.of_kind("PersistentVolumeClaim") == [claim]


def test_packed_objects_come_back_compacted_and_smaller() -> None:
    live = retained_claim()
    live["spec"]["template"] = {"containers": [{"name": f"c{i}", "env": []} for i in range(50)]}
    packed = pack(live)
    assert packed.unpack() == compact(live)
    assert len(packed.data) < len(json.dumps(live)) / 3
    assert first([packed]) == compact(live) and first(None) is None
    assert unpacked([packed, pack(retained_claim())])[1] == compact(retained_claim())
