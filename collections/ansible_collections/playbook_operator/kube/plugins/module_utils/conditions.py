"""Status conditions merged by type, with ``lastTransitionTime`` kept as apimachinery's
``meta.SetStatusCondition`` keeps it.

A condition list is a map keyed by ``type`` (``+listType=map``): one condition per type. A
given condition replaces the current one of its type as a whole (the Operator SDK's rule: what
a writer leaves out is gone), in its place, or is appended when new. Its ``lastTransitionTime``
is the current one's while ``status`` stays the same; when the status changes or the condition
is new, it is the given one's, or ``now``.

Malformed input, decided once: a current list that is not a list counts as empty; items that
are not objects with a string ``type`` are kept as they are, where they are (they are not ours
to drop); when the current list holds a type twice, the merged condition takes the place of the
first and the others of that type go, so the result is a list the apiserver accepts.

Pure functions on plain dicts and lists; nothing is mutated, the result is a new list of copies.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

TRANSITION_TIME = "lastTransitionTime"


def _type_of(condition: Any) -> str | None:
    if isinstance(condition, Mapping) and isinstance(condition.get("type"), str):
        return str(condition["type"])
    return None


def _as_list(conditions: Any) -> list[Any]:
    return list(conditions) if isinstance(conditions, list | tuple) else []


def find_condition(conditions: Any, ctype: str) -> Mapping[str, Any] | None:
    """The first condition of type ``ctype``, or None (``meta.FindStatusCondition``)."""
    return next((c for c in _as_list(conditions) if _type_of(c) == ctype), None)


def merge_conditions(current: Any, given: Iterable[Mapping[str, Any]], now: str, *,
                     keep_unlisted: bool = True) -> list[Any]:
    """``current`` with each of ``given`` set by type (see the module's rules), in order.

    With ``keep_unlisted`` false the result holds only the given conditions (a whole status
    replaced), their transition times still carried over from ``current``.
    """
    before = _as_list(current)
    previous: dict[str, Mapping[str, Any]] = {}
    for condition in before:
        ctype = _type_of(condition)
        if ctype is not None:
            previous.setdefault(ctype, condition)
    merged = [copy.deepcopy(c) for c in before] if keep_unlisted else []
    for condition in given:
        ctype = condition["type"]
        new = {key: copy.deepcopy(value) for key, value in condition.items() if key != TRANSITION_TIME}
        old = previous.get(ctype)
        if old is not None and old.get("status") == condition.get("status") and old.get(TRANSITION_TIME):
            new[TRANSITION_TIME] = old[TRANSITION_TIME]
        else:
            new[TRANSITION_TIME] = condition.get(TRANSITION_TIME) or now
        places = [i for i, c in enumerate(merged) if _type_of(c) == ctype]
        if not places:
            merged.append(new)
            continue
        merged[places[0]] = new
        for i in reversed(places[1:]):
            del merged[i]
    return merged


def set_condition(conditions: Any, new: Mapping[str, Any], now: str) -> list[Any]:
    """``conditions`` with ``new`` set by type (``meta.SetStatusCondition``, whole-condition)."""
    return merge_conditions(conditions, [new], now)


def remove_condition(conditions: Any, ctype: str) -> list[Any]:
    """``conditions`` without any of type ``ctype`` (``meta.RemoveStatusCondition``)."""
    return [copy.deepcopy(c) for c in _as_list(conditions) if _type_of(c) != ctype]
