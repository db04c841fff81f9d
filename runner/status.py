"""Status as the Operator SDK's Ansible operator writes it: pure functions, no I/O.

Conditions `Running`, `Successful` and `Failure` with the SDK's reasons and
messages, `ansibleResult` counts where the SDK puts them (on `Running` after a
successful run, on `Failure` after a failed one), and `observedGeneration`.
Anything else in `status` (what a role wrote itself with `k8s_status`) is carried
over untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner import basics

# metav1 times are read once for all (Leases, metrics): the shared basics.
parse_time = basics.times.parse_time

RUNNING = "Running"
SUCCESSFUL = "Successful"
FAILURE = "Failure"

REASON_RUNNING = "Running"
REASON_SUCCESSFUL = "Successful"
REASON_FAILED = "Failed"
REASON_UNKNOWN = "Unknown"

MESSAGE_RUNNING = "Running reconciliation"
MESSAGE_AWAITING = "Awaiting next reconciliation"
MESSAGE_SUCCESSFUL = "Last reconciliation succeeded"


@dataclass(frozen=True)
class AnsibleResult:
    """The counts of one run. `completion` is when it ended: a datetime or an RFC 3339 string."""

    ok: int
    changed: int
    skipped: int
    failures: int
    completion: str | datetime

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "changed": self.changed, "skipped": self.skipped,
                "failures": self.failures, "completion": completion_time(self.completion)}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def completion_time(moment: str | datetime) -> str:
    """A time as the SDK writes `ansibleResult.completion`.

    Go's layout `2006-01-02T15:04:05.99999999+00:00`: UTC, fractional seconds without
    trailing zeros (none when whole), and a literal `+00:00`. A string that is not an
    RFC 3339 time is kept as it is: a status write never fails over a timestamp.
    """
    if isinstance(moment, str):
        try:
            at = datetime.fromisoformat(moment)
        except ValueError:
            return moment
    else:
        at = moment
    at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    fraction = f".{at.microsecond:06d}".rstrip("0") if at.microsecond else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "+00:00"


# Conditions are merged by type as everywhere else in the project (`runner.basics`): a condition
# replaces the one of its type as a whole, and lastTransitionTime moves only when `status` changes.
set_condition = basics.conditions.set_condition
remove_condition = basics.conditions.remove_condition


def running_status(current: Mapping[str, Any] | None, at: str | None = None) -> dict[str, Any]:
    """The status to write as a run starts."""
    at = at or now()
    status = copy.deepcopy(dict(current or {}))
    status["conditions"] = set_condition(status.get("conditions"), {
        "type": RUNNING, "status": "True", "reason": REASON_RUNNING, "message": MESSAGE_RUNNING,
    }, at)
    return status


def finished_status(
    current: Mapping[str, Any] | None,
    *,
    generation: int | None,
    result: AnsibleResult | None,
    failure_message: str | None,
    at: str | None = None,
) -> dict[str, Any]:
    """The status to write when a run ends.

    `failure_message` is None for a successful run. `result` is None when Ansible
    never produced stats (it could not start), which the SDK reports as reason Unknown.
    """
    at = at or now()
    status = copy.deepcopy(dict(current or {}))
    conditions = status.get("conditions")
    counts = result.as_dict() if result else None
    if failure_message is None:
        # As the SDK's markDone: the counts of a successful run go on Running, not on Successful.
        running: dict[str, Any] = {
            "type": RUNNING, "status": "True", "reason": REASON_SUCCESSFUL, "message": MESSAGE_AWAITING,
        }
        if counts:
            running["ansibleResult"] = counts
        conditions = set_condition(conditions, running, at)
        successful: dict[str, Any] = {
            "type": SUCCESSFUL, "status": "True", "reason": REASON_SUCCESSFUL, "message": MESSAGE_SUCCESSFUL,
        }
        conditions = set_condition(conditions, successful, at)
        conditions = remove_condition(conditions, FAILURE)
    else:
        # Those of a failed run go on Failure; Running is replaced, so it keeps no old counts.
        conditions = set_condition(conditions, {
            "type": RUNNING, "status": "False", "reason": REASON_FAILED, "message": failure_message,
        }, at)
        failure: dict[str, Any] = {
            "type": FAILURE, "status": "True",
            "reason": REASON_FAILED if result else REASON_UNKNOWN, "message": failure_message,
        }
        if counts:
            failure["ansibleResult"] = counts
        conditions = set_condition(conditions, failure, at)
        conditions = remove_condition(conditions, SUCCESSFUL)
    status["conditions"] = conditions
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def same_ignoring_times(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """True when two statuses differ at most in condition timestamps and ansibleResult.completion.

    Used to skip writes that would change nothing a reader cares about, so a
    converged object costs no write: counts that did not change are no change (a
    converged run repeats the counts of the one before, with `changed: 0`).
    """
    return bool(_normalise(a or {}) == _normalise(b or {}))


def _normalise(status: Mapping[str, Any]) -> Any:
    out = copy.deepcopy(dict(status))
    conds = []
    for cond in out.get("conditions") or []:
        cond = dict(cond)
        cond.pop("lastTransitionTime", None)
        result = cond.get("ansibleResult")
        if isinstance(result, dict):
            cond["ansibleResult"] = {k: v for k, v in result.items() if k != "completion"}
        conds.append(cond)
    out["conditions"] = sorted(conds, key=lambda c: str(c.get("type")))
    return out
