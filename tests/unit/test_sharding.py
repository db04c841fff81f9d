"""Sharding's pure rules: the apiserver's hash, the split, how little moves, and that two members
never act on one slice."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from runner import sharding
from runner.sharding import ALL_SLICES, SLICES, acting, assign, moved, owned, ranges, shard_selector, slice_of


def test_the_hash_is_go_fnv1a_64() -> None:
    # Go's hash/fnv New64a test vectors, and a uid the v1.37.2 apiserver put in the upper half.
    assert sharding.fnv1a_64("") == 0xCBF29CE484222325
    assert sharding.fnv1a_64("a") == 0xAF63DC4C8601EC8C
    assert sharding.fnv1a_64("4fd475ce-550c-4013-a886-25a13da2cc98") == 0xF45EE2C5FD98DD87


def test_a_slice_is_the_hashs_top_byte() -> None:
    assert SLICES == 256
    assert slice_of("4fd475ce-550c-4013-a886-25a13da2cc98") == 0xF4


def test_every_member_computes_the_same_split_whatever_the_order() -> None:
    members = ["r3", "r1", "r2"]
    split = assign(members)
    assert split == assign(reversed(members)) == assign(set(members))
    assert set(split) == set(members)
    assert len(split) == SLICES
    assert assign([]) == ("",) * SLICES


@pytest.mark.parametrize("count", [2, 3, 4])
def test_the_split_is_fair_within_a_fifth(count: int) -> None:
    members = [f"playbook-operator-7d9f8-{i}" for i in range(count)]
    shares = Counter(assign(members))
    fair = SLICES / count
    assert all(0.8 * fair <= shares[m] <= 1.2 * fair for m in members), shares


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_a_member_that_joins_takes_only_what_it_now_owns(count: int) -> None:
    before = [f"m{i}" for i in range(count)]
    after = [*before, "new"]
    changed = [s for s, (a, b) in enumerate(zip(assign(before), assign(after), strict=True)) if a != b]
    assert changed, "the new member gets something"
    assert all(assign(after)[s] == "new" for s in changed)
    assert moved(before, after) == len(changed) == len(owned(after, "new"))


def test_a_member_that_leaves_frees_only_its_own() -> None:
    before = ["a", "b", "c", "d"]
    after = ["a", "b", "d"]
    changed = {s for s, (x, y) in enumerate(zip(assign(before), assign(after), strict=True)) if x != y}
    assert changed == owned(before, "c")


def test_owned_slices_partition_the_space() -> None:
    members = ["a", "b", "c"]
    parts = [owned(members, m) for m in members]
    assert frozenset().union(*parts) == ALL_SLICES
    assert sum(len(p) for p in parts) == SLICES
    assert owned(members, "stranger") == frozenset()


def test_a_member_acts_on_its_own_slices_that_no_peer_still_claims() -> None:
    old, new = frozenset({"a"}), frozenset({"a", "b"})
    # b has published the new view, a still acts under the old one: b waits for what a holds.
    assert acting("b", new, {"a": old}) == frozenset()
    assert acting("a", old, {"b": new}) == owned(old, "a") - owned(new, "b")
    # a has let go and published the new view: each acts on its own.
    assert acting("b", new, {"a": new}) == owned(new, "b")
    assert acting("a", new, {"b": new}) == owned(new, "a")
    # Nothing published yet: nothing to act on, and nothing claimed.
    assert acting("a", None, {}) == frozenset()
    assert acting("b", new, {"a": None}) == owned(new, "b")


def test_no_two_members_ever_act_on_one_slice_whatever_views_they_published() -> None:
    names = ["a", "b", "c", "d"]
    views = [frozenset(c) for n in range(1, 5) for c in itertools.combinations(names, n)]
    rng = random.Random(5866)
    for _ in range(300):
        published = {m: rng.choice([None, *views]) for m in names}
        sets = {m: acting(m, published[m], published) for m in names}
        for x, y in itertools.combinations(names, 2):
            assert not sets[x] & sets[y], (published, x, y)


def test_ranges_merge_neighbours() -> None:
    size = 1 << 56
    assert ranges([0, 1, 2, 5, 255]) == [(0, 3 * size), (5 * size, 6 * size), (255 * size, 1 << 64)]
    assert ranges([]) == []


def test_the_selector_is_the_one_the_apiserver_reads() -> None:
    assert shard_selector(ALL_SLICES) == \
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"
    assert shard_selector([0x80, 0x81, 0xF0]) == (
        "shardRange(object.metadata.uid, '0x8000000000000000', '0x8200000000000000') || "
        "shardRange(object.metadata.uid, '0xf000000000000000', '0xf100000000000000')")
    assert shard_selector([]) == ""


def test_slices_for_people() -> None:
    assert sharding.describe([0, 1, 2, 0x80]) == "0x00-0x02, 0x80"
    assert sharding.describe([]) == "none"
