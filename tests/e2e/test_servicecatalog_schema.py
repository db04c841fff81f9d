"""The service catalog CRDs (servicecatalog.playbook-operator.io) against a real apiserver: the
samples, the CEL rules and their messages, required fields said once and plainly, immutable
fields, defaults, the status the roles and the runner write, short names, printer columns and
the category. No operator runs here; everything is the apiserver's own doing.

Brokers, classes and plans are cluster-scoped: each test names its own (a random suffix) and
deletes them, as tests run side by side on xdist workers."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Cluster

SAMPLES = ROOT / "deploy" / "samples"
GROUP = "servicecatalog.playbook-operator.io"
API_VERSION = f"{GROUP}/v1alpha1"


def sample(name: str, kind: str) -> dict[str, Any]:
    """The object of `kind` in deploy/samples/servicecatalog-<name>.yaml."""
    docs = yaml.safe_load_all((SAMPLES / f"servicecatalog-{name}.yaml").read_text())
    return next(doc for doc in docs if doc and doc["kind"] == kind)


BROKER = sample("broker", "ClusterServiceBroker")
INSTANCE = sample("instance", "ServiceInstance")
CREDENTIAL = sample("credential", "ServiceCredential")
CA_BUNDLE = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n").decode()

# The apiserver's own words, as the tests below expect them.
URL_MESSAGE = "spec.url must be an http:// or https:// URL, such as https://broker.example.com"
CLASS_IMMUTABLE = "spec.clusterServiceClassExternalName cannot change: create another ServiceInstance"
# What it adds to a schema error (a `required`, an enum...) in a CRD with CEL rules: the CRDs
# say required fields with CEL rules instead, so that this never comes with them.
NOT_CHECKED = "some validation rules were not checked"


def apply(cluster: Cluster, obj: dict[str, Any], namespace: str | None = None,
          *args: str) -> subprocess.CompletedProcess[str]:
    ns = ["-n", namespace] if namespace else []
    return cluster.kubectl("apply", *ns, *args, "-f", "-", input=json.dumps(obj), check=False)


def refused(proc: subprocess.CompletedProcess[str], message: str) -> str:
    """The apiserver's refusal, asserted to say `message` and nothing about unchecked rules."""
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
    assert NOT_CHECKED not in proc.stderr, proc.stderr
    return proc.stderr


def edited(obj: dict[str, Any], name: str, mutate: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"] = {"name": name}
    if mutate is not None:
        mutate(out["spec"])
    return out


def patch_status(cluster: Cluster, resource: str, name: str, status: dict[str, Any],
                 namespace: str | None = None) -> dict[str, Any]:
    ns = ["-n", namespace] if namespace else []
    out = cluster.kubectl("patch", resource, name, *ns, "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": status}), "-o", "json").stdout
    return dict(json.loads(out))


def tables(output: str) -> dict[str, list[list[str]]]:
    """`kubectl get a,b,c` output as {resource of the first row: rows}, header row first."""
    found: dict[str, list[list[str]]] = {}
    for block in output.strip().split("\n\n"):
        rows = [line.split() for line in block.splitlines()]
        found[rows[1][0].split("/")[0]] = rows
    return found


@pytest.fixture
def cluster_scoped(cluster: Cluster, crds: None) -> Iterator[Callable[[str], str]]:
    """`cluster_scoped(prefix)`: a name for a broker, class or plan of this test's own (cluster-
    scoped objects are shared by the tests side by side); all of them are deleted afterwards."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    if names:
        for resource in ("clusterservicebrokers", "clusterserviceclasses", "clusterserviceplans"):
            cluster.kubectl("delete", f"{resource}.{GROUP}", "--ignore-not-found", "--wait=false", *names,
                            check=False)


# Samples ---------------------------------------------------------------------------------------

SAMPLE_OBJECTS = {
    "servicecatalog-broker.yaml": ["secret/playbook-broker-auth",
                                   f"clusterservicebroker.{GROUP}/playbook-broker"],
    "servicecatalog-instance.yaml": [f"serviceinstance.{GROUP}/orders-db"],
    "servicecatalog-credential.yaml": [f"servicecredential.{GROUP}/orders-db"],
    "servicecatalog-binding.yaml": ["servicebinding.servicebinding.io/orders-db",
                                    "podset.workloads.playbook-operator.io/orders"],
}


def test_the_samples_are_all_tested_here() -> None:
    assert sorted(SAMPLE_OBJECTS) == sorted(p.name for p in SAMPLES.glob("servicecatalog-*.yaml"))


@pytest.mark.parametrize("name", sorted(SAMPLE_OBJECTS))
def test_sample_passes_server_side_dry_run(cluster: Cluster, crds: None, name: str) -> None:
    # In `default`, as the samples are written (the broker's Secret names it); a dry run changes nothing.
    out = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", str(SAMPLES / name)).stdout
    for obj in SAMPLE_OBJECTS[name]:
        assert f"{obj} created (server dry run)" in out or f"{obj} configured (server dry run)" in out \
            or f"{obj} unchanged (server dry run)" in out, out


def test_the_credential_crd_is_a_provisioned_service(cluster: Cluster, crds: None) -> None:
    crd = json.loads(cluster.kubectl("get", "crd", f"servicecredentials.{GROUP}", "-o", "json").stdout)
    assert crd["metadata"]["labels"]["servicebinding.io/provisioned-service"] == "true"
    binding = sample("binding", "ServiceBinding")
    assert binding["spec"]["service"] == {"apiVersion": API_VERSION, "kind": "ServiceCredential", "name": "orders-db"}


# ClusterServiceBroker --------------------------------------------------------------------------

def test_broker_defaults(cluster: Cluster, cluster_scoped: Callable[[str], str]) -> None:
    name = cluster_scoped("broker")
    assert apply(cluster, edited(BROKER, name)).returncode == 0
    spec = json.loads(cluster.kubectl("get", "csb", name, "-o", "json").stdout)["spec"]
    assert spec == {**BROKER["spec"], "insecureSkipTLSVerify": False, "relistDuration": "15m", "relistRequests": 0}


BROKER_ACCEPTED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "https-with-path": lambda s: s.update(url="https://broker.example.com:8443/osb"),
    "ca-bundle": lambda s: s.update(caBundle=CA_BUNDLE),
    "insecure": lambda s: s.update(insecureSkipTLSVerify=True),
    "ca-bundle-and-insecure-false": lambda s: s.update(caBundle=CA_BUNDLE, insecureSkipTLSVerify=False),
    "compound-duration": lambda s: s.update(relistDuration="1h30m"),
    "fractional-duration": lambda s: s.update(relistDuration="1.5h"),
    "relist-requested": lambda s: s.update(relistRequests=3),
    "no-auth": lambda s: s.pop("authInfo"),
}


@pytest.mark.parametrize("case", sorted(BROKER_ACCEPTED))
def test_broker_variant_is_accepted(cluster: Cluster, cluster_scoped: Callable[[str], str], case: str) -> None:
    proc = apply(cluster, edited(BROKER, cluster_scoped("broker"), BROKER_ACCEPTED[case]), None, "--dry-run=server")
    assert proc.returncode == 0, proc.stderr


BROKER_REFUSED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "ftp-url": (lambda s: s.update(url="ftp://x"), f'spec.url: Invalid value: "ftp://x": {URL_MESSAGE}'),
    "not-a-url": (lambda s: s.update(url="not a url"), f'spec.url: Invalid value: "not a url": {URL_MESSAGE}'),
    "url-without-host": (lambda s: s.update(url="https://"), URL_MESSAGE),
    "no-url": (lambda s: s.pop("url"),
               "spec.url: Required value: spec.url is required: the broker's http:// or https:// URL, "
               "such as https://broker.example.com"),
    "ca-bundle-and-insecure": (lambda s: s.update(caBundle=CA_BUNDLE, insecureSkipTLSVerify=True),
                               "spec.insecureSkipTLSVerify: Forbidden: spec.caBundle and spec.insecureSkipTLSVerify "
                               "are exclusive: either trust the broker's certificate through caBundle or skip the "
                               "verification, not both"),
    "duration-without-unit": (lambda s: s.update(relistDuration="15"),
                              'spec.relistDuration: Invalid value: "15": spec.relistDuration must be a positive '
                              "duration such as 15m, 1h30m or 90s"),
    "duration-in-words": (lambda s: s.update(relistDuration="fifteen minutes"),
                          "spec.relistDuration must be a positive duration such as 15m, 1h30m or 90s"),
    "zero-duration": (lambda s: s.update(relistDuration="0s"),
                      "spec.relistDuration must be a positive duration such as 15m, 1h30m or 90s"),
    "negative-relist-requests": (lambda s: s.update(relistRequests=-1),
                                 "spec.relistRequests in body should be greater than or equal to 0"),
    "secret-without-namespace": (lambda s: s["authInfo"]["basic"]["secretRef"].pop("namespace"),
                                 "spec.authInfo.basic.secretRef.namespace: Required value: "
                                 "spec.authInfo.basic.secretRef.namespace is required: the Secret's namespace"),
    "basic-without-secret": (lambda s: s["authInfo"]["basic"].pop("secretRef"),
                             "spec.authInfo.basic.secretRef: Required value"),
    "ca-bundle-not-base64": (lambda s: s.update(caBundle="-----BEGIN CERTIFICATE-----"), "spec.caBundle"),
}


@pytest.mark.parametrize("case", sorted(BROKER_REFUSED))
def test_invalid_broker_is_refused(cluster: Cluster, cluster_scoped: Callable[[str], str], case: str) -> None:
    mutate, message = BROKER_REFUSED[case]
    name = cluster_scoped("broker")
    proc = apply(cluster, edited(BROKER, name, mutate))
    if case == "ca-bundle-not-base64":  # a type error: the apiserver's own words, with its note
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    else:
        refused(proc, message)
    assert cluster.kubectl("get", "csb", name, check=False).returncode != 0


# ClusterServiceClass and ClusterServicePlan ----------------------------------------------------

def catalog_entries(broker: str, klass: str, plan: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A class and a plan as the broker's role writes them."""
    cls = {"apiVersion": API_VERSION, "kind": "ClusterServiceClass", "metadata": {"name": klass},
           "spec": {"clusterServiceBrokerName": broker, "externalName": "sync-db", "externalID": "0b5b1c56",
                    "description": "A database", "bindable": True, "planUpdatable": True,
                    "bindingsRetrievable": False, "instancesRetrievable": True, "tags": ["sql", "db"],
                    "requires": ["syslog_drain"], "externalMetadata": {"displayName": "Sync DB", "n": {"x": [1]}}}}
    pln = {"apiVersion": API_VERSION, "kind": "ClusterServicePlan", "metadata": {"name": plan},
           "spec": {"clusterServiceBrokerName": broker, "externalName": "small", "externalID": "f1d3ab2e",
                    "description": "5 GB", "clusterServiceClassRef": {"name": klass}, "free": True,
                    "maximumPollingDuration": 600, "maintenanceInfo": {"version": "2.1.0", "description": "fixes"},
                    "externalMetadata": {"bullets": ["fast"]},
                    "instanceCreateParameterSchema": {"$schema": "http://json-schema.org/draft-04/schema#",
                                                      "type": "object",
                                                      "properties": {"storage_gb": {"type": "integer"}}},
                    "instanceUpdateParameterSchema": {"type": "object"},
                    "serviceBindingCreateParameterSchema": {"type": "object"}}}
    return cls, pln


def test_classes_and_plans(cluster: Cluster, cluster_scoped: Callable[[str], str]) -> None:
    broker, klass, plan = cluster_scoped("broker"), cluster_scoped("class"), cluster_scoped("plan")
    cls, pln = catalog_entries(broker, klass, plan)
    for obj in (cls, pln):
        assert apply(cluster, obj).returncode == 0
        stored = json.loads(cluster.kubectl("get", f"{obj['kind'].lower()}.{GROUP}", obj["metadata"]["name"],
                                            "-o", "json").stdout)
        assert stored["spec"] == obj["spec"]  # opaque metadata and schemas kept as they are

    # The catalog's IDs cannot change; all else can.
    moved = edited(cls, klass, lambda s: s.update(externalID="another"))
    refused(apply(cluster, moved), 'spec.externalID: Invalid value: "another": spec.externalID cannot change')
    refused(apply(cluster, edited(pln, plan, lambda s: s.update(externalID="another"))),
            "spec.externalID cannot change")
    assert apply(cluster, edited(pln, plan, lambda s: s.update(description="6 GB", free=False))).returncode == 0

    patch_status(cluster, "csc", klass, {"removedFromBrokerCatalog": True})
    patch_status(cluster, "csp", plan, {"removedFromBrokerCatalog": True, "anythingElse": {"kept": 1}})
    stored = json.loads(cluster.kubectl("get", "csp", plan, "-o", "json").stdout)
    assert stored["status"] == {"removedFromBrokerCatalog": True, "anythingElse": {"kept": 1}}

    classes = tables(cluster.kubectl("get", "csc", klass).stdout)[klass]
    assert classes[0] == ["NAME", "EXTERNAL-NAME", "BROKER", "DESCRIPTION", "REMOVED", "AGE"]
    assert classes[1][:6] == [klass, "sync-db", broker, "A", "database", "true"]  # "A database": two words
    plans = tables(cluster.kubectl("get", "csp", plan).stdout)[plan]
    assert plans[0] == ["NAME", "EXTERNAL-NAME", "BROKER", "CLASS", "REMOVED", "AGE"]
    assert plans[1][:5] == [plan, "small", broker, klass, "true"]


# ServiceInstance -------------------------------------------------------------------------------

def secret_ref(**ref: str) -> dict[str, Any]:
    return {"secretKeyRef": ref}


INSTANCE_REFUSED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "no-plan": (lambda s: s.pop("clusterServicePlanExternalName"),
                "spec.clusterServicePlanExternalName: Required value: spec.clusterServicePlanExternalName is "
                "required: the plan, as the spec.externalName of one of the class's ClusterServicePlans "
                "(kubectl get csp)"),
    "no-class": (lambda s: s.pop("clusterServiceClassExternalName"),
                 "spec.clusterServiceClassExternalName: Required value: spec.clusterServiceClassExternalName is "
                 "required: the service, as the spec.externalName of a ClusterServiceClass (kubectl get csc)"),
    "empty-plan": (lambda s: s.update(clusterServicePlanExternalName=""),
                   "spec.clusterServicePlanExternalName in body should be at least 1 chars long"),
    "parameters-from-without-key": (lambda s: s.update(parametersFrom=[secret_ref(name="db-params")]),
                                    "spec.parametersFrom[0].secretKeyRef.key: Required value: secretKeyRef.key is "
                                    "required: the Secret entry that holds the parameters (a JSON object)"),
    "parameters-from-without-name": (lambda s: s.update(parametersFrom=[secret_ref(name="a", key="b"),
                                                                        secret_ref(key="params")]),
                                     "spec.parametersFrom[1].secretKeyRef.name: Required value: secretKeyRef.name "
                                     "is required: the Secret's name"),
    "parameters-from-without-secret-key-ref": (lambda s: s.update(parametersFrom=[{}]),
                                               "spec.parametersFrom[0].secretKeyRef: Required value: secretKeyRef "
                                               "is required"),
    "parameters-not-an-object": (lambda s: s.update(parameters=["storage_gb", 5]), "spec.parameters"),
    "too-many-parameters-from": (lambda s: s.update(parametersFrom=[secret_ref(name=f"s{i}", key="k")
                                                                    for i in range(17)]),
                                 "spec.parametersFrom: Too many: 17: must have at most 16 items"),
}


@pytest.mark.parametrize("case", sorted(INSTANCE_REFUSED))
def test_invalid_instance_is_refused(cluster: Cluster, crds: None, namespace: str, case: str) -> None:
    mutate, message = INSTANCE_REFUSED[case]
    proc = apply(cluster, edited(INSTANCE, "bad", mutate), namespace)
    if case in ("parameters-not-an-object", "too-many-parameters-from"):  # schema errors, with the apiserver's note
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    else:
        refused(proc, message)
    assert cluster.get("si", "bad", namespace) is None


def test_instance_class_is_immutable_and_plan_is_not(cluster: Cluster, crds: None, namespace: str) -> None:
    def with_params(spec: dict[str, Any]) -> None:
        spec["parametersFrom"] = [secret_ref(name="db-params", key="params.json")]

    assert apply(cluster, edited(INSTANCE, "orders-db", with_params), namespace).returncode == 0
    stderr = refused(apply(cluster, edited(INSTANCE, "orders-db",
                                           lambda s: s.update(clusterServiceClassExternalName="async-db")), namespace),
                     CLASS_IMMUTABLE)
    assert f'spec.clusterServiceClassExternalName: Invalid value: "async-db": {CLASS_IMMUTABLE}' in stderr
    # A plan update, and other parameters.
    proc = apply(cluster, edited(INSTANCE, "orders-db",
                                 lambda s: s.update(clusterServicePlanExternalName="large",
                                                    parameters={"storage_gb": 50, "tier": {"io": "high"}})), namespace)
    assert proc.returncode == 0, proc.stderr
    obj = cluster.get("si", "orders-db", namespace)
    assert obj is not None
    assert obj["spec"] == {"clusterServiceClassExternalName": "sync-db", "clusterServicePlanExternalName": "large",
                           "parameters": {"storage_gb": 50, "tier": {"io": "high"}}}
    assert obj["metadata"]["generation"] == 2


# ServiceCredential -----------------------------------------------------------------------------

CREDENTIAL_REFUSED: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "no-instance-ref": (lambda s: s.pop("instanceRef"),
                        "spec.instanceRef: Required value: spec.instanceRef is required: the ServiceInstance to bind, "
                        "by name"),
    "instance-ref-without-name": (lambda s: s.update(instanceRef={}),
                                  "spec.instanceRef.name: Required value: spec.instanceRef.name is required: the "
                                  "ServiceInstance's name"),
    "secret-name-not-a-name": (lambda s: s.update(secretName="Orders_DB"),
                               'spec.secretName: Invalid value: "Orders_DB"'),
    "parameters-from-without-key": (lambda s: s.update(parametersFrom=[secret_ref(name="p")]),
                                    "spec.parametersFrom[0].secretKeyRef.key: Required value"),
}


@pytest.mark.parametrize("case", sorted(CREDENTIAL_REFUSED))
def test_invalid_credential_is_refused(cluster: Cluster, crds: None, namespace: str, case: str) -> None:
    mutate, message = CREDENTIAL_REFUSED[case]
    refused(apply(cluster, edited(CREDENTIAL, "bad", mutate), namespace), message)
    assert cluster.get("scred", "bad", namespace) is None


SECRET_NAME_IMMUTABLE = ("spec.secretName: Invalid value: spec.secretName cannot change (unset, it is the "
                         "ServiceCredential's name): create another ServiceCredential")


def test_credential_instance_and_secret_are_immutable(cluster: Cluster, crds: None, namespace: str) -> None:
    assert apply(cluster, edited(CREDENTIAL, "orders-db"), namespace).returncode == 0
    refused(apply(cluster, edited(CREDENTIAL, "orders-db", lambda s: s.update(instanceRef={"name": "other"})),
                  namespace),
            "spec.instanceRef: Invalid value: spec.instanceRef cannot change: create another ServiceCredential")
    refused(apply(cluster, edited(CREDENTIAL, "orders-db", lambda s: s.update(secretName="other")), namespace),
            SECRET_NAME_IMMUTABLE)
    refused(apply(cluster, edited(CREDENTIAL, "orders-db", lambda s: s.pop("secretName")), namespace),
            SECRET_NAME_IMMUTABLE)
    assert apply(cluster, edited(CREDENTIAL, "orders-db", lambda s: s.update(parameters={"ro": True})),
                 namespace).returncode == 0

    # Unset, the Secret is the credential's own name: naming it so is no change, naming another is.
    assert apply(cluster, edited(CREDENTIAL, "plain", lambda s: s.pop("secretName")), namespace).returncode == 0
    refused(apply(cluster, edited(CREDENTIAL, "plain", lambda s: s.update(secretName="elsewhere")), namespace),
            SECRET_NAME_IMMUTABLE)
    proc = apply(cluster, edited(CREDENTIAL, "plain", lambda s: s.update(secretName="plain")), namespace)
    assert proc.returncode == 0, proc.stderr


# Status, short names, printer columns and the category -----------------------------------------

def conditions(reason: str) -> list[dict[str, Any]]:
    """Ready as a role writes it, and the runner's own conditions (with ansibleResult)."""
    return [
        {"type": "Ready", "status": "True" if reason in ("Provisioned", "Bound", "Fetched") else "False",
         "reason": reason, "message": "done", "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1},
        {"type": "Running", "status": "True", "reason": "Successful", "message": "Awaiting next reconciliation",
         "lastTransitionTime": "2024-01-01T00:00:00Z",
         "ansibleResult": {"ok": 3, "changed": 1, "skipped": 0, "failures": 0,
                           "completion": "2024-01-01T00:00:00.5+00:00"}},
        {"type": "Successful", "status": "True", "reason": "Successful", "message": "Last reconciliation succeeded",
         "lastTransitionTime": "2024-01-01T00:00:00Z"},
    ]


def test_status_and_printer_columns(cluster: Cluster, cluster_scoped: Callable[[str], str], namespace: str) -> None:
    broker = cluster_scoped("broker")
    assert apply(cluster, edited(BROKER, broker)).returncode == 0
    assert apply(cluster, edited(INSTANCE, "orders-db"), namespace).returncode == 0
    assert apply(cluster, edited(CREDENTIAL, "orders-db"), namespace).returncode == 0

    broker_status = {"conditions": conditions("Fetched"), "observedGeneration": 1,
                     "lastCatalogRetrievalTime": "2024-01-01T00:00:00Z", "catalog": {"classes": 2, "plans": 5},
                     "ansibleResult": {"ok": 1}}
    instance_status = {
        "conditions": [*conditions("Provisioned"),
                       {"type": "OrphanMitigation", "status": "False", "reason": "NotNeeded", "message": "",
                        "lastTransitionTime": "2024-01-01T00:00:00Z"}],
        "observedGeneration": 1, "asyncOpInProgress": False, "orphanMitigationInProgress": False,
        "currentOperation": "Provision", "lastOperation": "op-1234", "operationStartTime": "2024-01-01T00:00:00Z",
        "provisionStatus": "Provisioned", "deprovisionStatus": "Required",
        "externalProperties": {"clusterServicePlanExternalName": "small", "clusterServicePlanExternalID": "f1d3ab2e",
                               "parameterChecksum": "4d9a5e"},
        "dashboardURL": "https://broker.example.com/dash/1",
        "clusterServiceClassRef": {"name": "0b5b1c56"}, "clusterServicePlanRef": {"name": "f1d3ab2e"},
        "roleNotes": {"kept": True},
    }
    credential_status = {
        "conditions": conditions("Bound"), "observedGeneration": 1, "asyncOpInProgress": True,
        "orphanMitigationInProgress": False, "currentOperation": "Bind", "lastOperation": "bind-1",
        "operationStartTime": "2024-01-01T00:00:00Z", "unbindStatus": "Required",
        "externalProperties": {"parameterChecksum": "9f00aa"}, "binding": {"name": "orders-db-credentials"},
    }
    # Everything the roles and the runner write is kept as written, unknown fields included.
    assert patch_status(cluster, "csb", broker, broker_status)["status"] == broker_status
    assert patch_status(cluster, "si", "orders-db", instance_status, namespace)["status"] == instance_status
    assert patch_status(cluster, "scred", "orders-db", credential_status, namespace)["status"] == credential_status

    # The enums hold in status too.
    proc = cluster.kubectl("patch", "si", "orders-db", "-n", namespace, "--subresource=status", "--type=merge",
                           "-p", json.dumps({"status": {"currentOperation": "Bind"}}), check=False)
    assert proc.returncode != 0 and 'status.currentOperation: Unsupported value: "Bind"' in proc.stderr, proc.stderr

    found = tables(cluster.kubectl("get", "csb,si,scred", "-n", namespace).stdout)
    brokers = found[f"clusterservicebroker.{GROUP}"]
    assert brokers[0] == ["NAME", "URL", "STATUS", "CLASSES", "PLANS", "AGE"]
    assert [f"clusterservicebroker.{GROUP}/{broker}", "http://127.0.0.1:8390", "Fetched", "2", "5"] in \
        [row[:5] for row in brokers[1:]]
    assert found[f"serviceinstance.{GROUP}"][0] == ["NAME", "CLASS", "PLAN", "STATUS", "AGE"]
    assert found[f"serviceinstance.{GROUP}"][1][:4] == [f"serviceinstance.{GROUP}/orders-db", "sync-db", "small",
                                                        "Provisioned"]
    assert found[f"servicecredential.{GROUP}"][0] == ["NAME", "INSTANCE", "SECRET", "STATUS", "AGE"]
    assert found[f"servicecredential.{GROUP}"][1][:4] == [f"servicecredential.{GROUP}/orders-db", "orders-db",
                                                          "orders-db-credentials", "Bound"]

    # The category lists the namespaced kinds of this namespace (and the cluster-scoped ones).
    listed = cluster.kubectl("get", "servicecatalog", "-n", namespace, "-o", "name").stdout.split()
    assert f"serviceinstance.{GROUP}/orders-db" in listed
    assert f"servicecredential.{GROUP}/orders-db" in listed
    assert f"clusterservicebroker.{GROUP}/{broker}" in listed
