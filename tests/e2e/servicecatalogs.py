"""The service catalog in e2e tests: a real broker of hack/osb per test, registered under a name
of the test's own, and an operator that reconciles only that broker.

Brokers are cluster-scoped and every test's operator would see every test's brokers, so each
test's operator watches ClusterServiceBrokers labelled with its namespace only
(`tests.support.watches_for_namespace`), and each broker prefixes its catalog's ids and service
names with the namespace: the classes and plans of tests side by side never meet.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hack.osb.process import BrokerProcess, Kind
from tests.support import (
    BROKER_TEST_LABEL,
    Cluster,
    OperatorProcess,
    conditions_of,
    wait_for,
    watches_for_namespace,
)

API = "servicecatalog.playbook-operator.io/v1alpha1"
KINDS = ("ClusterServiceBroker", "ServiceInstance", "ServiceCredential", "ServiceBinding", "PodSet")


def watches_for(path: Path, namespace: str, *, request_timeout: int | None = None) -> Path:
    """The project's watches for these kinds, its broker watch limited to this test's brokers."""
    timeouts = {} if request_timeout is None else {"serviceinstance_request_timeout": request_timeout,
                                                   "servicecredential_request_timeout": request_timeout}
    return watches_for_namespace(path, namespace, kinds=KINDS, role_vars=timeouts)


class Catalog:
    """One test's broker process, its ClusterServiceBroker, and the objects made through it."""

    def __init__(self, cluster: Cluster, namespace: str, tmp_path: Path, kind: Kind = "openbroker", *,
                 password: str | None = None, broker_args: Sequence[str] = ()) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.prefix = f"{namespace}-"
        self.name = f"{namespace}-{kind}"
        self.broker = BrokerProcess(kind, tmp_path / f"{kind}.json", password=password,
                                    extra_args=["--catalog-prefix", self.prefix, *broker_args])

    # ----- objects ---------------------------------------------------------------------------------

    def register(self) -> None:
        """The broker's auth Secret and its ClusterServiceBroker."""
        self.cluster.apply(json.dumps({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "broker-auth"},
            "data": {"username": _b64(self.broker.username), "password": _b64(self.broker.password)}}),
            self.namespace)
        self.apply({"apiVersion": API, "kind": "ClusterServiceBroker",
                    "metadata": {"name": self.name, "labels": {BROKER_TEST_LABEL: self.namespace}},
                    "spec": {"url": self.broker.url, "relistDuration": "10m",
                             "authInfo": {"basic": {"secretRef": {"name": "broker-auth",
                                                                  "namespace": self.namespace}}}}})

    def service(self, name: str) -> str:
        """A service's externalName in this test's catalog."""
        return self.prefix + name

    def instance(self, name: str, service: str, plan: str, **spec: Any) -> None:
        self.apply({"apiVersion": API, "kind": "ServiceInstance", "metadata": {"name": name},
                    "spec": {"clusterServiceClassExternalName": self.service(service),
                             "clusterServicePlanExternalName": plan, **spec}})

    def credential(self, name: str, instance: str, **spec: Any) -> None:
        self.apply({"apiVersion": API, "kind": "ServiceCredential", "metadata": {"name": name},
                    "spec": {"instanceRef": {"name": instance}, **spec}})

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.apply(json.dumps(obj), self.namespace)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.cluster.get(f"{kind.lower()}s.servicecatalog.playbook-operator.io", name, self.namespace)

    def delete(self, kind: str, name: str, *, wait: bool = False) -> None:
        self.cluster.kubectl("delete", f"{kind.lower()}s.servicecatalog.playbook-operator.io", name, "-n",
                             self.namespace, f"--wait={str(wait).lower()}", "--ignore-not-found", "--timeout=120s")

    # ----- waiting ---------------------------------------------------------------------------------

    def wait_condition(self, kind: str, name: str, reason: str, *, ctype: str = "Ready",
                       status: str | None = None, timeout: float = 180) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            found = conditions_of(self.get(kind, name)).get(ctype) or {}
            if found.get("reason") == reason and (status is None or found.get("status") == status):
                return found
            return None
        return wait_for(check, timeout=timeout, what=f"{kind} {name}: {ctype} {reason}")

    def wait_gone(self, kind: str, name: str, timeout: float = 180) -> None:
        wait_for(lambda: self.get(kind, name) is None, timeout=timeout, what=f"{kind} {name} to go")

    def requests(self, method: str | None = None, path_part: str = "") -> list[dict[str, Any]]:
        return [r for r in self.broker.requests()
                if (method is None or r["method"] == method) and path_part in r["path"]]

    def broker_status(self, path: str) -> int:
        """The HTTP status of a GET the broker answers as a platform would ask it."""
        token = base64.b64encode(f"{self.broker.username}:{self.broker.password}".encode()).decode()
        request = urllib.request.Request(self.broker.url + path, headers={
            "Authorization": f"Basic {token}", "X-Broker-API-Version": "2.17"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return err.code

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.cluster.list("events", self.namespace) if e["involvedObject"]["name"] == name]

    # ----- teardown --------------------------------------------------------------------------------

    def remove_everything(self) -> None:
        """Credentials, instances, then the broker, each through its finalizer while the operator
        runs; whatever is still held after that loses its finalizer, so nothing is left behind."""
        for kind in ("ServiceCredential", "ServiceInstance"):
            self.cluster.kubectl("delete", f"{kind.lower()}s.servicecatalog.playbook-operator.io", "--all", "-n",
                                 self.namespace, "--wait=false", check=False)
        self.cluster.kubectl("delete", "clusterservicebroker", self.name, "--wait=false", "--ignore-not-found",
                             check=False)
        try:
            wait_for(lambda: not self._left(), timeout=60, what="the service catalog objects to go")
        except AssertionError:
            for kind, name in self._left():
                self.cluster.kubectl("patch", kind, name, "-n", self.namespace, "--type=merge",
                                     "-p", '{"metadata":{"finalizers":null}}', check=False)

    def _left(self) -> list[tuple[str, str]]:
        left = []
        for kind in ("servicecredentials", "serviceinstances"):
            left += [(kind, o["metadata"]["name"]) for o in self.cluster.list(kind, self.namespace)]
        if self.cluster.get("clusterservicebroker", self.name, self.namespace) is not None:
            left.append(("clusterservicebroker", self.name))
        return left


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_data(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    secret = cluster.get("secret", name, namespace) or {}
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


@contextmanager
def started(catalog: Catalog, operator: OperatorProcess) -> Iterator[Catalog]:
    """The broker started and registered, and everything removed afterwards (the operator still
    running), then the broker stopped."""
    catalog.broker.start()
    try:
        catalog.register()
        catalog.wait_condition("ClusterServiceBroker", catalog.name, "FetchedCatalog", status="True")
        yield catalog
    finally:
        try:
            catalog.remove_everything()
        finally:
            catalog.broker.stop()
