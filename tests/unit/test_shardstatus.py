"""`playbook-operator shards`: the table of members, as read from their Leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runner import sharding
from runner.leader import LeaseRecord
from runner.shards import member_lease
from runner.shardstatus import table

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def lease(member: str, view: set[str] | None, *, renewed_ago: float = 1, objects: int = 0) -> dict[str, object]:
    renewed = NOW - timedelta(seconds=renewed_ago)
    return member_lease(None, operator="op", member=member, namespace="ops",
                        view=None if view is None else frozenset(view), objects=objects,
                        record=LeaseRecord(f"{member}_1", 15, renewed, renewed, 0))


def rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines()[1:]}


def test_each_member_its_state_slices_and_objects() -> None:
    text = table([lease("b", {"a", "b"}, objects=7), lease("a", {"a", "b"}, objects=5),
                  lease("d", {"a", "b", "d"}, renewed_ago=40)], NOW)
    assert text.splitlines()[0].split() == ["MEMBER", "STATE", "SLICES", "OBJECTS", "RENEWED", "RANGES"]
    found = rows(text)
    assert list(found) == ["a", "b", "d"]
    assert found["a"][1:5] == ["acting", str(len(sharding.owned({"a", "b"}, "a"))), "5", "1s"]
    assert found["b"][1:4] == ["acting", str(len(sharding.owned({"a", "b"}, "b"))), "7"]
    assert found["d"][1] == "expired"
    assert "ranges)" in text, "long lists of ranges are cut short"


def test_a_member_that_joins_has_nothing_yet_and_the_others_hand_over() -> None:
    found = rows(table([lease("a", {"a", "b"}), lease("b", {"a", "b"}), lease("c", None)], NOW))
    assert found["c"][1:3] == ["joining", "0"]
    assert found["a"][1:3] == found["b"][1:3] == ["handing", "over"]


def test_a_member_under_an_older_view_is_handing_over() -> None:
    found = rows(table([lease("a", {"a"}), lease("b", {"a", "b"})], NOW))
    assert found["a"][1:3] == ["handing", "over"]
    assert found["b"][1] == "acting"


def test_wide_lists_every_range() -> None:
    text = table([lease("a", {"a", "b"}), lease("b", {"a", "b"})], NOW, wide=True)
    assert sharding.describe(sharding.owned({"a", "b"}, "a")) in text
