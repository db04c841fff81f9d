"""The credentials bindings return: made once per binding and kept in its record, so a repeated
bind answers the same password."""

from __future__ import annotations

import secrets
from typing import Any

PORTS = {"postgresql": 5432, "mysql": 3306}


def secret() -> str:
    return secrets.token_urlsafe(18)


def database(kind: str, instance_id: str, binding_id: str) -> dict[str, Any]:
    """A `kind` (postgresql, mysql) database's credentials."""
    return {
        "type": kind,
        "provider": "playbook-broker",
        "host": f"db-{instance_id[:8]}.example.test",
        "port": PORTS[kind],
        "username": f"u-{binding_id[:8]}",
        "password": secret(),
        "database": "app",
    }


def redis(instance_id: str) -> dict[str, Any]:
    return {
        "type": "redis",
        "provider": "edge",
        "uri": f"redis://redis-{instance_id[:8]}.example.test:6379/0",
        "password": secret(),
    }
