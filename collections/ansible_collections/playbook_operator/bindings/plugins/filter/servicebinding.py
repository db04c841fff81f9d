"""The ServiceBinding filters (servicebinding.io spec v1.1): thin wrappers that hand what the
role read to the collection's module_utils, each with one job:

* ``jsonpath``: Fixed JSONPaths and JSON pointers, the language of workload resource mappings;
* ``resolver``: what a binding refers to: the mapping of a workload's kind, the binding Secret a
  service exposes, whether a workload is selected;
* ``projector``: the projection into one workload, and its exact removal;
* ``patch``: the guarded JSON patch between a workload as read and as it should be;
* ``plan``: one workload's change, and the whole decision of one reconcile with its conditions
  and Events;
* ``reads``: why a read the role made failed.

Documentation for ansible-doc is in the neighbouring <filter name>.yml files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.bindings.plugins.module_utils.plan import plan, projection, transitions
from ansible_collections.playbook_operator.bindings.plugins.module_utils.reads import read_error
from ansible_collections.playbook_operator.bindings.plugins.module_utils.resolver import mapping_name, resolve_service


def servicebinding_plan(binding: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The plan for one reconcile from what the role read (see plan())."""
    if not isinstance(binding, Mapping):
        raise AnsibleFilterError("servicebinding_plan expects the ServiceBinding object")
    meta = binding.get("metadata") or {}
    out = plan(binding, namespace=str(facts.get("namespace") or meta.get("namespace") or ""),
               service=facts.get("service") or None, service_error=facts.get("service_error") or None,
               secret_found=bool(facts.get("secret_found")), workloads=facts.get("workloads") or [],
               workloads_error=facts.get("workloads_error") or None, mappings=facts.get("mappings") or [],
               mappings_error=facts.get("mappings_error") or None, deleting=bool(facts.get("deleting")))
    out["events"] = [] if facts.get("deleting") else transitions(binding.get("status"), out["conditions"])
    return out


def servicebinding_projection(workload: Mapping[str, Any], binding: Mapping[str, Any], secret: str | None = None,
                              mappings: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    return projection(workload, binding, secret, mappings or [])


def servicebinding_mapping_name(api_version: str, kind: str) -> str:
    return mapping_name(api_version, kind)


def servicebinding_secret_name(binding: Mapping[str, Any], service: Mapping[str, Any] | None = None) -> str:
    """The binding Secret's name, or "" while it is unknown (see resolve_service())."""
    return str(resolve_service(binding, service or None)["secret"] or "")


def servicebinding_read_error(result: Mapping[str, Any]) -> str:
    """Why a read registered with ``failed_when: false`` failed, in a line, or "" (see read_error())."""
    return read_error(result)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "servicebinding_plan": servicebinding_plan,
            "servicebinding_projection": servicebinding_projection,
            "servicebinding_mapping_name": servicebinding_mapping_name,
            "servicebinding_secret_name": servicebinding_secret_name,
            "servicebinding_read_error": servicebinding_read_error,
        }
