"""A broker's answer to one OSB request, read: what kind of answer it is, how the broker put its
failure, and when to ask again. Pure: the outcome of an `osb_request` task in, plain data out.

OSB v2.17 (https://github.com/openservicebrokerapi/servicebroker/blob/v2.17/spec.md): 200 and 201
are done, 202 is accepted for later (poll `last_operation`), 410 is gone, 409 and other 4xx are
the broker refusing (never worth a retry, never an orphan), 422 carries a reason (`AsyncRequired`,
`ConcurrencyError`, `MaintenanceInfoConflict`, ...), and a 5xx or no answer within the timeout
leaves the platform not knowing what the broker did: orphan mitigation.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.playbook_operator.kube.plugins.module_utils.times import parse_time

# Kinds of answer.
DONE = "done"  # 200, 201
ACCEPTED = "accepted"  # 202
GONE = "gone"  # 410
REFUSED = "refused"  # 409, 4xx not named below
MAINTENANCE_CONFLICT = "maintenance_conflict"  # 422 MaintenanceInfoConflict: the catalog we hold is stale
BUSY = "busy"  # 422 ConcurrencyError: another operation runs on the same instance
UNKNOWN_OUTCOME = "unknown_outcome"  # 5xx, other codes, or a timeout: the broker may have acted
UNREACHABLE = "unreachable"  # no connection: the broker never saw the request
LOCAL_ERROR = "local_error"  # nothing sent: the auth Secret or a parametersFrom Secret is wrong
NOT_SENT = "not_sent"  # check mode: a change is not sent

# Seconds between polls of an asynchronous operation, when the broker names no Retry-After: a
# quarter of the time it has taken so far, within these bounds (fast for the quick ones, gentle
# for the ones that take hours).
POLL_MIN, POLL_MAX = 1, 60
# Seconds before asking again after an error that may pass (an unreachable broker, a refused
# deprovision): half the time since the operation started, within these bounds.
RETRY_MIN, RETRY_MAX = 2, 300

_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 409: "Conflict", 410: "Gone", 412: "Precondition Failed",
            422: "Unprocessable Entity", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Answer:
    """The result of one `osb_request` task, as the machines need it."""

    sent: bool
    status: int
    timed_out: bool = False
    error: str = ""
    error_reason: str = ""
    body: Mapping[str, Any] = field(default_factory=dict)
    body_text: str = ""
    retry_after: int | None = None
    parameters_checksum: str = ""

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> Answer:
        """Read a task's result; what cannot be read (a status that is not a number, a
        Retry-After that is not a finite one) counts as missing, so this never raises."""
        body = result.get("body")
        retry = result.get("retry_after")
        try:
            status = int(result.get("status") or 0)
        except (TypeError, ValueError, OverflowError):
            status = 0
        return cls(sent=bool(result.get("sent")), status=status,
                   timed_out=bool(result.get("timed_out")), error=str(result.get("error") or ""),
                   error_reason=str(result.get("error_reason") or ""),
                   body=body if isinstance(body, Mapping) else {}, body_text=str(result.get("body_text") or ""),
                   retry_after=int(retry) if isinstance(retry, (int, float)) and math.isfinite(retry) and retry >= 0
                   else None,
                   parameters_checksum=str(result.get("parameters_checksum") or ""))

    @property
    def kind(self) -> str:
        if self.error_reason in ("ParametersFromError", "BrokerAuthSecretMissing"):
            return LOCAL_ERROR
        if not self.sent and not self.status and not self.error:
            return NOT_SENT
        if self.timed_out:
            return UNKNOWN_OUTCOME
        if not self.status:
            return UNREACHABLE
        if self.status in (200, 201):
            return DONE
        if self.status == 202:
            return ACCEPTED
        if self.status == 410:
            return GONE
        if self.status == 422 and self.osb_error == "MaintenanceInfoConflict":
            return MAINTENANCE_CONFLICT
        if self.status == 422 and self.osb_error == "ConcurrencyError":
            return BUSY
        if 400 <= self.status < 500:
            return REFUSED
        return UNKNOWN_OUTCOME

    @property
    def osb_error(self) -> str:
        """The error code of an OSB error body (`AsyncRequired`, ...), or ""."""
        value = self.body.get("error")
        return value if isinstance(value, str) else ""

    @property
    def description(self) -> str:
        """What the broker said, in its own words, or what went wrong on the way."""
        if self.kind == LOCAL_ERROR or not self.status:
            if self.timed_out:
                return self.error or "the broker did not answer in time"
            return self.error or "the broker did not answer"
        said = self.body.get("description")
        said = said if isinstance(said, str) and said else self.body_text.strip()[:300]
        code = f"{self.status} {_REASONS.get(self.status, '')}".strip()
        prefix = f"the broker answered {code}" + (f" ({self.osb_error})" if self.osb_error else "")
        return f"{prefix}: {said}" if said else prefix

    @property
    def operation(self) -> str:
        """The operation key of a 202, to hand back when polling."""
        value = self.body.get("operation")
        return value if isinstance(value, str) else ""

    @property
    def state(self) -> str:
        """`in progress`, `succeeded` or `failed` from a last_operation answer, or ""."""
        value = self.body.get("state")
        return value if value in ("in progress", "succeeded", "failed") else ""


def clock(now: Any = None) -> datetime.datetime:
    """`now` as given (an RFC 3339 string, for tests and dry runs), else the current time."""
    return parse_time(now) or datetime.datetime.now(datetime.UTC)


def elapsed(since: Any, now: datetime.datetime) -> float:
    started = parse_time(since)
    return max(0.0, (now - started).total_seconds()) if started else 0.0


def poll_after(answer: Answer | None, since: Any, now: datetime.datetime) -> int:
    """Seconds until the next poll: the broker's Retry-After, else a quarter of the time so far."""
    if answer is not None and answer.retry_after is not None:
        return max(1, answer.retry_after)
    return int(min(POLL_MAX, max(POLL_MIN, elapsed(since, now) / 4)))


def retry_after(since: Any, now: datetime.datetime) -> int:
    """Seconds until an attempt that failed in a way that may pass is made again."""
    return int(min(RETRY_MAX, max(RETRY_MIN, elapsed(since, now) / 2)))


def duration(seconds: int | float) -> str:
    """A Go duration for `requeue_after`."""
    return f"{max(1, int(seconds))}s"
