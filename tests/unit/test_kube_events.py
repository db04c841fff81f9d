"""runner.kube: an Event the apiserver refuses is logged, never a crashed reconcile."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runner.kube import Kube

BINDING = {"apiVersion": "servicebinding.io/v1", "kind": "ServiceBinding",
           "metadata": {"name": "pg", "namespace": "t-1", "uid": "u1"}}


class RefusingCore:
    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            err = ApiException(status=403, reason="Forbidden")
            err.body = ('{"kind":"Status","message":"events \\"pg.\\" is forbidden: unable to create new content '
                        'in namespace t-1 because it is being terminated","reason":"Forbidden","code":403}')
            raise err
        return refuse


def test_a_refused_event_is_logged_and_the_reconcile_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    kube = Kube(client.ApiClient())
    core = RefusingCore()
    kube._events.core = core  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="playbook_operator.kube"):
        kube.event(BINDING, type_="Warning", reason="ReconcileFailed", message="boom")
    assert core.calls >= 1
    assert ('could not post Event ReconcileFailed on t-1/pg: events "pg." is forbidden: unable to create new '
            'content in namespace t-1 because it is being terminated') in caplog.text
