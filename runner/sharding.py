"""Sharding, pure: how the hash space is split among an operator's replicas, and which slices
one replica may act on. No I/O: `runner.shards` runs these rules against Leases.

Objects are placed by the 64-bit FNV-1a hash of their uid, the hash the apiserver's sharded
list and watch uses (KEP-5866: ``shardRange(object.metadata.uid, start, end)``). The space is
cut into `SLICES` equal slices, and each slice has one owner among the members, chosen by
rendezvous hashing: every member scores every slice by a hash of (member, slice) and the best
score wins. So the split moves as little as it can:
- a member that joins takes the slices it now scores best on, about 1/N of them, each from
  whoever held it, and nothing else moves;
- a member that leaves frees only its own slices, each to its runner-up;
- every replica that sees the same members computes the same split, with nothing to agree on.

Exactly one at a time. Each member publishes the member set it acts under (its *view*). It
acts on a slice only while the slice is its own under its published view and no other live
member's published view gives the slice to that member (`acting`). Slices go before views
change: a member stops starting runs in the slices a new view takes away, waits for its runs
there to end, and only then publishes the new view. A member that gains a slice publishes first
and reads the others' views after; of two members that both claim a slice, the second to
publish therefore reads the first's claim, and waits. Once every member has seen the same
Leases, the views agree and every slice has exactly one owner.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping

HASH_BITS = 64
SLICE_BITS = 8
SLICES = 1 << SLICE_BITS
"""The unit of handover: 256 slices, one per value of the hash's top byte. Enough that each of 2
to 4 replicas gets its share within about a tenth; few enough that a selector stays a few
kilobytes (at most 128 ranges)."""
SLICE_SIZE = 1 << (HASH_BITS - SLICE_BITS)
ALL_SLICES = frozenset(range(SLICES))
UID_FIELD = "object.metadata.uid"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << HASH_BITS) - 1


def fnv1a_64(text: str) -> int:
    """The apiserver's shard hash (Go's hash/fnv New64a) of a string."""
    value = _FNV_OFFSET
    for byte in text.encode():
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


def slice_of(uid: str) -> int:
    """The slice an object with this uid belongs to."""
    return fnv1a_64(uid) >> (HASH_BITS - SLICE_BITS)


def _score(member: str, slice_: int) -> int:
    # A well-mixed hash: FNV of strings that differ in their last characters is not.
    return int.from_bytes(hashlib.blake2b(f"{member}\0{slice_}".encode(), digest_size=8).digest(), "big")


def assign(members: Iterable[str]) -> tuple[str, ...]:
    """The owner of each slice ("" for all of them when there are no members)."""
    return _assign(frozenset(members))


@functools.lru_cache(maxsize=64)
def _assign(names: frozenset[str]) -> tuple[str, ...]:
    if not names:
        return ("",) * SLICES
    return tuple(_winner(names, s) for s in range(SLICES))


def _winner(names: frozenset[str], slice_: int) -> str:
    return max(sorted(names), key=lambda member: _score(member, slice_))


def owned(members: Iterable[str], member: str) -> frozenset[int]:
    """The slices `member` owns among `members` (none when it is not one of them)."""
    names = frozenset(members)
    if member not in names:
        return frozenset()
    return frozenset(s for s, owner in enumerate(assign(names)) if owner == member)


def moved(before: Iterable[str], after: Iterable[str]) -> int:
    """How many slices change owner when the members go from `before` to `after`."""
    return sum(1 for a, b in zip(assign(before), assign(after), strict=True) if a != b)


def acting(member: str, view: frozenset[str] | None, peers: Mapping[str, frozenset[str] | None]) -> frozenset[int]:
    """The slices `member` may act on: its own under its published `view`, less those that a live
    peer's published view gives to that peer (`peers`: name -> view; None: nothing published)."""
    if view is None:
        return frozenset()
    mine = owned(view, member)
    for peer, peer_view in peers.items():
        if peer != member and peer_view is not None:
            mine -= owned(peer_view, peer)
    return mine


def ranges(slices: Iterable[int]) -> list[tuple[int, int]]:
    """The slices as hash ranges [start, end), neighbours merged, in order."""
    merged: list[tuple[int, int]] = []
    for s in sorted(set(slices)):
        start, end = s * SLICE_SIZE, (s + 1) * SLICE_SIZE
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def hex_bound(value: int) -> str:
    """A bound as the apiserver reads it: 0x and 16 hex digits (2^64, the end, has 17)."""
    return f"0x{value:016x}"


def shard_selector(slices: Iterable[int], field: str = UID_FIELD) -> str:
    """The `shardSelector` of a list or watch that returns exactly these slices; "" for none
    (which the apiserver refuses: a replica without slices watches nothing)."""
    return " || ".join(f"shardRange({field}, '{hex_bound(start)}', '{hex_bound(end)}')"
                       for start, end in ranges(slices))


def describe(slices: Iterable[int]) -> str:
    """Slices for people, by the hash's top byte: ``0x00-0x3f, 0x80, 0x90-0x9f``."""
    parts = []
    for start, end in ranges(slices):
        first, last = start >> (HASH_BITS - 8), (end - 1) >> (HASH_BITS - 8)
        parts.append(f"{first:#04x}" if first == last else f"{first:#04x}-{last:#04x}")
    return ", ".join(parts) or "none"
