"""The pure part of k8s_event: the name and content of the core/v1 Event to write."""

from __future__ import annotations

import copy
from typing import Any

# Event fields the task sets; a field the task leaves out is removed from an existing Event.
_FIELDS = ("message", "reason", "type", "source", "reportingComponent", "reportingInstance", "involvedObject")


def event_name(name: str, append_timestamp: bool, now_ns: int) -> str:
    """client-go's naming for a fresh Event, `<name>.<hex nanoseconds>`: still a valid
    object name, and unique per emission."""
    return f"{name}.{now_ns:x}" if append_timestamp else name


def next_event(
    existing: dict[str, Any] | None,
    *,
    name: str,
    namespace: str,
    fields: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """The Event after one more occurrence. As the SDK does, an existing Event with the
    same reason counts up and keeps its firstTimestamp; with another reason it starts
    again at 1. lastTimestamp is always now."""
    if existing:
        event = copy.deepcopy(existing)
    else:
        event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": namespace}}
    again = bool(existing) and existing.get("reason") == fields.get("reason")
    for key in _FIELDS:
        value = fields.get(key)
        if value is None:
            event.pop(key, None)
        else:
            event[key] = copy.deepcopy(value)
    event["count"] = int(existing.get("count") or 1) + 1 if again else 1
    event["firstTimestamp"] = (existing.get("firstTimestamp") or now) if again else now
    event["lastTimestamp"] = now
    return event
