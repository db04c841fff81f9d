"""Reading Kubernetes objects and pods, as the workloads filters need it: metadata, labels,
phase, readiness and its time, restarts, the controller, and timestamps as aware UTC datetimes.
Shared by the PodSet filters (podset.py) and the rollout plan (rollout.py); pure, and run on
the Ansible controller with them (a bad timestamp is an AnsibleFilterError)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

Pod = Mapping[str, Any]


# --- time ----------------------------------------------------------------------------


def utc(moment: datetime.datetime) -> datetime.datetime:
    # A naive datetime (Ansible's now() without utc=true) is taken as UTC rather than local
    # time: the apiserver's timestamps are UTC and mixing both cannot be compared.
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment.astimezone(datetime.UTC)


def parse_time(value: Any, what: str) -> datetime.datetime | None:
    """An RFC 3339 string, a datetime or epoch seconds as an aware UTC datetime; None when unset."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return utc(value)
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{what} must be a timestamp, not {value!r}")
    if isinstance(value, int | float):
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    if isinstance(value, str):
        try:
            return utc(datetime.datetime.fromisoformat(value))
        except ValueError:
            pass
    raise AnsibleFilterError(f"{what} must be an RFC 3339 timestamp, not {value!r}")


def now(now: Any) -> datetime.datetime:
    parsed = parse_time(now, "now")
    return parsed if parsed is not None else datetime.datetime.now(datetime.UTC)


# --- one pod -------------------------------------------------------------------------


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return meta(obj).get("labels") or {}


def name(pod: Pod) -> str:
    return str(meta(pod).get("name") or "")


def phase(pod: Pod) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def ready_condition(pod: Pod) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def is_ready(pod: Pod) -> bool:
    condition = ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Pod) -> datetime.datetime | None:
    condition = ready_condition(pod)
    return None if condition is None else parse_time(condition.get("lastTransitionTime"), "lastTransitionTime")


def max_restarts(pod: Pod) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses if isinstance(s, Mapping)), default=0)


def being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def controller_uid(pod: Pod) -> str | None:
    for ref in meta(pod).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return str(ref.get("uid") or "")
    return None


def podset_spec(podset: Mapping[str, Any]) -> Mapping[str, Any]:
    """A PodSet's spec ({} when unset); anything but an object is refused."""
    if not isinstance(podset, Mapping):
        raise AnsibleFilterError(f"podset must be a PodSet object, not {type(podset).__name__}")
    return podset.get("spec") or {}
