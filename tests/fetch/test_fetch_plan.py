"""Pure planning: which objects form the model, which byte ranges are missing."""

from __future__ import annotations

import pytest

from emotivoice_fetch.errors import ExitCode, FetchError
from emotivoice_fetch.plan import (
    PinConflict,
    RemoteObject,
    covered,
    describe_conflicts,
    merge_ranges,
    missing_ranges,
    pin_conflicts,
    relpath_of,
    select_objects,
)

MB = 1024 * 1024


def test_missing_ranges_cuts_parts_and_folds_a_small_tail() -> None:
    assert missing_ranges(10 * MB, [], 4 * MB) == [(0, 4 * MB), (4 * MB, 8 * MB), (8 * MB, 10 * MB)]
    # A tail under a quarter part goes into the previous part: no 100-byte request.
    assert missing_ranges(8 * MB + 100, [], 4 * MB) == [(0, 4 * MB), (4 * MB, 8 * MB + 100)]


def test_missing_ranges_skips_what_is_done() -> None:
    done = [(0, 3 * MB), (5 * MB, 6 * MB)]
    assert missing_ranges(8 * MB, done, 4 * MB) == [(3 * MB, 5 * MB), (6 * MB, 8 * MB)]
    assert missing_ranges(8 * MB, [(0, 8 * MB)], 4 * MB) == []
    assert missing_ranges(0, [], 4 * MB) == []


def test_merge_and_cover() -> None:
    assert merge_ranges([(5, 9), (0, 3), (3, 4), (8, 12)]) == [(0, 4), (5, 12)]
    assert covered(10, [(0, 4), (2, 6), (8, 20)]) == 8


def test_relpath_of_skips_folders_and_reserved_names() -> None:
    assert relpath_of("models/m/a/b.bin", "models/m/") == "a/b.bin"
    assert relpath_of("models/m/a/", "models/m/") is None
    assert relpath_of("models/m/.emotivoice-complete.json", "models/m/") is None
    with pytest.raises(FetchError) as err:
        relpath_of("models/m/a/../../x", "models/m/")
    assert "not a safe relative path" in err.value.message


def objs(*names: str) -> list[RemoteObject]:
    return [RemoteObject(n, "p/" + n, 1, f'"{n}"') for n in names]


def test_select_every_listed_object_or_the_wanted_ones() -> None:
    listed = objs("b", "a", "manifest.sha256")
    assert [o.relpath for o in select_objects(listed, None, "s3://x/p/", ["manifest.sha256"])] == [
        "a",
        "b",
    ]
    assert [o.relpath for o in select_objects(listed, ["b"], "s3://x/p/")] == ["b"]


def test_select_names_missing_objects() -> None:
    with pytest.raises(FetchError) as err:
        select_objects(objs("a"), ["a", "gone.bin"], "s3://x/p/")
    assert err.value.code == ExitCode.MISSING_KEY
    assert "s3://x/p/gone.bin" in err.value.message
    with pytest.raises(FetchError) as err:
        select_objects([], None, "s3://x/p/")
    assert err.value.code == ExitCode.MISSING_KEY


def test_a_key_that_is_also_a_directory_of_another_is_refused_naming_both() -> None:
    """Issue 16: `m/x` and `m/x/y` used to stop with "Is a directory", naming neither."""
    for wanted in (None, ["x", "x/y/z"]):
        with pytest.raises(FetchError) as err:
            select_objects(objs("x", "x/y/z", "w"), wanted, "s3://b/m/")
        assert err.value.code == ExitCode.USAGE
        assert "s3://b/m/x and s3://b/m/x/y/z" in err.value.message
    # Siblings that merely share a name prefix are fine.
    assert len(select_objects(objs("x", "x.bin", "xy/z"), None, "s3://b/m/")) == 3


def test_pin_conflicts_name_contradicted_and_absent_files() -> None:
    cached = {"a": "1" * 64, "b": "2" * 64}
    assert pin_conflicts(cached, {}) == []
    assert pin_conflicts(cached, {"a": "1" * 64}) == [], "agreeing pins, even partial, are fine"
    conflicts = pin_conflicts(cached, {"b": "3" * 64, "a": "1" * 64, "c": "4" * 64})
    assert conflicts == [PinConflict("b", "3" * 64, "2" * 64), PinConflict("c", "4" * 64, None)]
    text = describe_conflicts(conflicts)
    assert f"b: pinned sha256 {'3' * 64}, the cache holds {'2' * 64}" in text
    assert "c: pinned sha256" in text and "the cache has no such file" in text
    many = [PinConflict(f"f{i}", "0" * 64, None) for i in range(5)]
    assert describe_conflicts(many).endswith("; and 2 more")
