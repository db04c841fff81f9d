"""What a broker remembers of each request (served at ``GET /admin/requests``) and the line it
logs for it. Neither holds a secret: no Authorization header, no password, no credentials."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"
SECRET_KEYS = frozenset({"credentials", "password"})
HIDDEN_HEADERS = frozenset({"authorization"})
# The newest entries only, so that a long demo run does not grow the state file without end.
LIMIT = 1000


def redact(value: Any) -> Any:
    """`value` with whatever sits under a secret key, at any depth, replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def body_of(raw: bytes) -> Any:
    """A request body as logged: JSON redacted; anything else only by its size (it cannot be
    searched for secrets)."""
    if not raw:
        return None
    try:
        return redact(json.loads(raw))
    except ValueError:
        return f"<{len(raw)} bytes, not JSON>"


def entry(method: str, path: str, query: dict[str, str], headers: Iterable[tuple[str, str]],
          raw_body: bytes, status: int) -> dict[str, Any]:
    return {
        "time": time.time(),
        "method": method,
        "path": path,
        "query": query,
        "headers": {k: v for k, v in headers if k.lower() not in HIDDEN_HEADERS},
        "body": body_of(raw_body),
        "status": status,
    }


def append(log: list[dict[str, Any]], item: dict[str, Any]) -> None:
    log.append(item)
    del log[:-LIMIT]


def line(method: str, target: str, status: int, seconds: float) -> str:
    return f"{method} {target} -> {status} ({seconds * 1000:.0f} ms)"
