"""What a ServiceBinding refers to, worked out from what the role read: the workload resource
mapping of a workload's kind (a ClusterWorkloadResourceMapping, else the built-in one), the
binding Secret a service exposes, and whether the binding selects a workload. The resolver
decides what to bind; the projector (projector.py) changes the workload.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.bindings.plugins.module_utils.jsonpath import MappingError, parse_path
from ansible_collections.playbook_operator.kube.plugins.module_utils import selectors

SECRET_API = ("v1", "Secret")

# The mapping every PodSpec-able resource gets (the spec's default), and the one the issue asks
# for CronJobs, whose pod template is one level deeper. A ClusterWorkloadResourceMapping for the
# kind replaces either.
PODSPEC_MAPPING: dict[str, Any] = {
    "annotations": ".spec.template.metadata.annotations",
    "containers": [
        {"path": ".spec.template.spec.containers[*]", "name": ".name", "env": ".env", "volumeMounts": ".volumeMounts"},
        {"path": ".spec.template.spec.initContainers[*]", "name": ".name", "env": ".env",
         "volumeMounts": ".volumeMounts"},
    ],
    "volumes": ".spec.template.spec.volumes",
}
CRONJOB_MAPPING: dict[str, Any] = {
    "annotations": ".spec.jobTemplate.spec.template.metadata.annotations",
    "containers": [
        {"path": ".spec.jobTemplate.spec.template.spec.containers[*]", "name": ".name", "env": ".env",
         "volumeMounts": ".volumeMounts"},
        {"path": ".spec.jobTemplate.spec.template.spec.initContainers[*]", "name": ".name", "env": ".env",
         "volumeMounts": ".volumeMounts"},
    ],
    "volumes": ".spec.jobTemplate.spec.template.spec.volumes",
}
BUILTIN_MAPPINGS = {("batch", "CronJob"): CRONJOB_MAPPING}


# --- the mapping ---------------------------------------------------------------------------------


def guess_plural(kind: str) -> str:
    """The resource name Kubernetes guesses for a kind (client-go's UnsafeGuessKindToResource)."""
    lower = kind.lower()
    if not lower:
        return lower
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def mapping_name(api_version: str, kind: str) -> str:
    """`<plural>.<group>`, the name a ClusterWorkloadResourceMapping for this kind has."""
    group = api_version.rpartition("/")[0]
    plural = guess_plural(kind)
    return f"{plural}.{group}" if group else plural


def resolve_mapping(api_version: str, kind: str, mappings: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The mapping template for a workload's apiVersion and kind, defaults filled in.

    A ClusterWorkloadResourceMapping named for the kind wins: its template for the version, else
    its ``*`` template; then the built-in one (CronJob), then the PodSpec-able default."""
    group, _, version = api_version.rpartition("/")
    template: Mapping[str, Any] | None = None
    wanted = mapping_name(api_version, kind)
    for mapping in mappings or []:
        if (mapping.get("metadata") or {}).get("name") != wanted:
            continue
        versions = (mapping.get("spec") or {}).get("versions") or []
        if not isinstance(versions, list):
            raise MappingError(f"ClusterWorkloadResourceMapping {wanted}: spec.versions must be a list")
        exact = [v for v in versions if isinstance(v, dict) and v.get("version") == version]
        wildcard = [v for v in versions if isinstance(v, dict) and v.get("version") == "*"]
        template = next(iter(exact or wildcard), None)
    if template is None:
        return copy.deepcopy(BUILTIN_MAPPINGS.get((group, kind), PODSPEC_MAPPING))
    out: dict[str, Any] = {
        "annotations": template.get("annotations") or PODSPEC_MAPPING["annotations"],
        "volumes": template.get("volumes") or PODSPEC_MAPPING["volumes"],
    }
    containers = template.get("containers")
    if containers is None:
        out["containers"] = copy.deepcopy(PODSPEC_MAPPING["containers"])
    elif not isinstance(containers, list):
        raise MappingError(f"ClusterWorkloadResourceMapping {wanted}: containers must be a list")
    else:
        out["containers"] = []
        for c in containers:
            if not isinstance(c, dict) or not c.get("path"):
                raise MappingError(f"ClusterWorkloadResourceMapping {wanted}: every container needs a path")
            entry = {"path": c["path"], "env": c.get("env") or ".env", "volumeMounts": c.get("volumeMounts")
                     or ".volumeMounts"}
            if c.get("name"):
                entry["name"] = c["name"]
            out["containers"].append(entry)
    validate_mapping(out)
    return out


def validate_mapping(mapping: Mapping[str, Any]) -> None:
    """Every path of a resolved mapping parses (raises MappingError naming the bad one)."""
    parse_path(mapping.get("annotations"))
    parse_path(mapping.get("volumes"))
    for c in mapping.get("containers") or []:
        parse_path(c.get("path"), fixed=False)
        for key in ("env", "volumeMounts", "name"):
            if key in c:
                parse_path(c[key])


# --- the service's Secret ------------------------------------------------------------------------


def resolve_service(binding: Mapping[str, Any], service: Mapping[str, Any] | None,
                    service_error: str | None = None) -> dict[str, Any]:
    """The binding Secret's name from spec.service: the Secret itself (a direct reference) or a
    Provisioned Service's status.binding.name. Returns ``{secret, ok, reason, message}``."""
    ref = (binding.get("spec") or {}).get("service") or {}
    what = f"{ref.get('kind')} {ref.get('name')!r} ({ref.get('apiVersion')})"
    if (ref.get("apiVersion"), ref.get("kind")) == SECRET_API:
        return {"secret": ref.get("name"), "ok": True, "reason": "ResolvedBindingSecret",
                "message": f"direct reference to Secret {ref.get('name')!r}"}
    if service_error:
        return {"secret": None, "ok": False, "reason": "ServiceUnavailable",
                "message": f"cannot read the service {what}: {service_error}"}
    if not service:
        return {"secret": None, "ok": False, "reason": "ServiceNotFound",
                "message": f"the service {what} does not exist"}
    name = ((service.get("status") or {}).get("binding") or {}).get("name")
    if not isinstance(name, str) or not name:
        return {"secret": None, "ok": False, "reason": "ServiceNotProvisioned",
                "message": f"the service {what} has no status.binding.name (not a Provisioned Service, or not ready)"}
    return {"secret": name, "ok": True, "reason": "ResolvedBindingSecret",
            "message": f"the service {what} exposes Secret {name!r}"}


# --- the workloads -------------------------------------------------------------------------------


def selects(binding: Mapping[str, Any], workload: Mapping[str, Any]) -> bool:
    """Whether the binding's spec.workload names or selects this workload."""
    ref = (binding.get("spec") or {}).get("workload") or {}
    if ref.get("apiVersion") != workload.get("apiVersion") or ref.get("kind") != workload.get("kind"):
        return False
    meta = workload.get("metadata") or {}
    if ref.get("name"):
        return bool(ref["name"] == meta.get("name"))
    if ref.get("selector") is not None:
        return selector_matches(meta.get("labels") or {}, ref["selector"])
    return False


def selector_matches(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    try:
        return selectors.label_selector(selector).matches(labels)
    except selectors.SelectorError as err:
        raise AnsibleFilterError(f"invalid label selector in spec.workload.selector: {err}") from None

