"""What requeue_after answers, shared by its module and its action plugin."""

from __future__ import annotations

from typing import Any

from ansible_collections.playbook_operator.kube.plugins.module_utils.durations import DurationError, parse_duration


def requeue_result(given: str) -> dict[str, Any]:
    """The task result for a requeue delay given as a Go duration: the seconds, or a failure."""
    try:
        seconds = parse_duration(given)
    except DurationError as exc:
        return {"failed": True, "msg": str(exc), "time": given}
    if seconds < 0:
        return {"failed": True, "msg": f"invalid duration {given!r}: a requeue delay cannot be negative",
                "time": given}
    return {"changed": False, "requeue_after": seconds, "time": given, "period": given}
