"""The e2e tests' own helpers, where a wrong helper would make a test flaky rather than fail."""

from __future__ import annotations

from typing import Any

from tests.e2e.servicebindings import wait_ready


def binding(reason: str, ready: str, bound: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": 1,
                              "conditions": [{"type": "Ready", "status": ready, "reason": reason}]}
    if bound:
        status["binding"] = {"name": bound}
    return {"metadata": {"name": "pg", "generation": 1}, "status": status}


class ChangingCluster:
    """A cluster whose binding moves to its next state on every read, as the operator writes."""

    def __init__(self, *states: dict[str, Any]) -> None:
        self.states = list(states)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_wait_ready_returns_the_object_its_condition_was_read_from() -> None:
    # Between two reads the operator turns SecretNotFound (no status.binding) into Ready.
    cluster = ChangingCluster(binding("SecretNotFound", "False", None), binding("Ready", "True", "pg-creds"))
    sb = wait_ready(cluster, "ns", "pg", "True", timeout=5)  # type: ignore[arg-type]
    assert sb["status"]["binding"] == {"name": "pg-creds"}
