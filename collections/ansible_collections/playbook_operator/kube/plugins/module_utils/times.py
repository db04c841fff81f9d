"""Kubernetes times (metav1.Time and MicroTime, RFC 3339) read and written: what the apiserver
stores in creationTimestamp, a Lease's renewTime or a status field. A time that names no zone is
UTC, as the apiserver's are (and as Ansible's now() without utc=true would otherwise mislead)."""

from __future__ import annotations

import datetime
from typing import Any


def parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 string or a datetime as an aware UTC datetime; None when absent or malformed."""
    if isinstance(value, str) and value:
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime.datetime):
        return None
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    """A metav1.Time: UTC, whole seconds, `Z`."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
