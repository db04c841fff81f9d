"""The pure part of k8s_status: validate conditions, compute the status to write, and
the JSON merge patch that turns the current status into it. No Kubernetes client here,
so the rules are unit-testable and the same in check mode and in a real run."""

from __future__ import annotations

import copy
import datetime
import re
from typing import Any

# Conditions are merged by type as everywhere else in the project: a given condition replaces the
# current one of its type as a whole, and lastTransitionTime moves only when the status changes.
from ansible_collections.playbook_operator.kube.plugins.module_utils.conditions import merge_conditions

CONDITION_FIELDS = ("type", "status", "reason", "message", "lastHeartbeatTime", "lastTransitionTime")
CONDITION_STATUSES = ("True", "False", "Unknown")
TIMESTAMP_FIELDS = ("lastHeartbeatTime", "lastTransitionTime")

# metav1.Condition's reason pattern: a CamelCase word, digits, '_', ',' and ':' allowed after
# the first letter. Every letters-only reason the SDK accepts also matches.
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
# RFC 3339, also with a space for 'T' (what `date --rfc-3339` prints), as the SDK accepts.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2})?(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class StatusError(ValueError):
    """The parameters cannot describe a status (bad condition, conflicting inputs)."""


def now_rfc3339(now: datetime.datetime | None = None) -> str:
    """A timestamp as the apiserver writes them: UTC, whole seconds, 'Z'."""
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_condition(condition: Any) -> dict[str, Any]:
    """Return a clean copy of one condition: None fields dropped, a boolean status spelled
    as Kubernetes spells it. Raise StatusError when it breaks the API conventions."""
    if not isinstance(condition, dict):
        raise StatusError("each condition must be an object")
    cleaned = {key: value for key, value in condition.items() if value is not None}
    unknown = sorted(set(cleaned) - set(CONDITION_FIELDS))
    if unknown:
        raise StatusError(
            f"{', '.join(unknown)} is not a valid field for a condition; "
            f"accepted fields are {', '.join(CONDITION_FIELDS)}"
        )
    if isinstance(cleaned.get("status"), bool):
        cleaned["status"] = "True" if cleaned["status"] else "False"
    for key in ("type", "status"):
        if not cleaned.get(key):
            raise StatusError(f"condition field '{key}' must be set")
    if not isinstance(cleaned["type"], str):
        raise StatusError("condition field 'type' must be a string")
    kind = cleaned["type"]
    if cleaned["status"] not in CONDITION_STATUSES:
        allowed = ", ".join(CONDITION_STATUSES)
        raise StatusError(f"condition '{kind}': status must be one of {allowed}, not {cleaned['status']!r}")
    reason = cleaned.get("reason")
    if reason is not None and not (isinstance(reason, str) and _REASON.match(reason)):
        raise StatusError(f"condition '{kind}': reason must be a single CamelCase word, not {reason!r}")
    for key in TIMESTAMP_FIELDS:
        value = cleaned.get(key)
        if value is not None and not (isinstance(value, str) and _RFC3339.match(value)):
            raise StatusError(f"condition '{kind}': {key} must be an RFC 3339 date-time, not {value!r}")
    return cleaned


def validate_conditions(conditions: Any) -> list[dict[str, Any]]:
    if not isinstance(conditions, list):
        raise StatusError("conditions must be a list")
    return [validate_condition(condition) for condition in conditions]


def _is_condition_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and isinstance(item.get("type"), str) for item in value
    )


def merge_values(current: dict[str, Any], given: dict[str, Any], replace_lists: bool) -> dict[str, Any]:
    """`given` merged into `current` as a JSON merge patch would, with the SDK's list rule:
    a list is left as it is when every given item is already in it, and replaced otherwise
    (with replace_lists, replaced whenever it differs). None removes a key. `conditions`
    lists always follow the subset rule: they are merged by type, not here."""
    result = copy.deepcopy(current)
    for key, value in given.items():
        existing = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            # Into a dict or nothing: nested nulls remove keys or are dropped, as in a merge patch.
            result[key] = merge_values(existing if isinstance(existing, dict) else {}, value, replace_lists)
        elif (
            isinstance(value, list)
            and isinstance(existing, list)
            and (key == "conditions" or not replace_lists)
            and all(item in existing for item in value)
        ):
            continue
        else:
            result[key] = copy.deepcopy(value)
    return result


def desired_status(
    current: dict[str, Any] | None,
    status: dict[str, Any] | None,
    conditions: list[dict[str, Any]] | None,
    *,
    now: str,
    replace: bool = False,
    replace_lists: bool = False,
) -> dict[str, Any]:
    """The status the object should have after the task.

    replace (the SDK's `force`): the given status is the whole status; only the
    lastTransitionTime of unchanged conditions is carried over. Otherwise the given status
    is merged into the current one and conditions are merged by type."""
    current = current if isinstance(current, dict) else {}
    given = copy.deepcopy(status) if status else {}
    if conditions and given.get("conditions") is not None:
        raise StatusError("conditions cannot be set in both the 'status' and the 'conditions' parameters")

    given_conds: list[dict[str, Any]] | None = None
    if conditions:
        given_conds = validate_conditions(conditions)
    elif _is_condition_list(given.get("conditions")):
        # status.conditions is taken as given (not validated), but still merged by type.
        given_conds = given.pop("conditions")

    current_conds = current.get("conditions")
    current_conds = current_conds if _is_condition_list(current_conds) else []

    if replace:
        result = _without_nulls(given)
        if given_conds is not None:
            result["conditions"] = merge_conditions(current_conds, given_conds, now, keep_unlisted=False)
        return result

    result = merge_values(current, given, replace_lists)
    if given_conds is not None:
        result["conditions"] = merge_conditions(current_conds, given_conds, now)
    return result


def _without_nulls(value: Any) -> Any:
    # Nulls in objects mean "no such key"; lists are values and stay as given.
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def merge_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The smallest RFC 7386 merge patch that turns `before` into `after` (lists are
    replaced whole, removed keys become null)."""
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    for key, value in after.items():
        if key not in before:
            patch[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(before[key], dict):
            nested = merge_patch(before[key], value)
            if nested:
                patch[key] = nested
        elif value != before[key]:
            patch[key] = copy.deepcopy(value)
    return patch
