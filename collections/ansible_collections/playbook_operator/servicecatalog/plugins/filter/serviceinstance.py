"""The ServiceInstance and ServiceCredential filters: thin wrappers over the collection's
module_utils, which hold the decisions:

* ``instance``: provision, update, deprovision and orphan mitigation of a ServiceInstance;
* ``credential``: bind, fetch, unbind and orphan mitigation of a ServiceCredential;
* ``steps``: what both share (the shape of a decision, conditions and Events, finding the class,
  plan and broker, the answer to a DELETE);
* ``answers``: a broker's answer read (its kind, its description, when to ask again).

Each reconcile is `*_step` (which request, if any), the `osb_request` task, then `*_outcome`
(the broker's answer read). Documentation for ansible-doc is in the neighbouring <filter>.yml files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import credential, instance


def _object(value: Any, kind: str, filter_name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not isinstance(value.get("metadata"), Mapping):
        raise AnsibleFilterError(f"{filter_name} expects the {kind} object")
    return value


def serviceinstance_step(obj: Any, facts: Mapping[str, Any], now: str | None = None) -> dict[str, Any]:
    return instance.step(_object(obj, "ServiceInstance", "serviceinstance_step"), facts or {}, now)


def serviceinstance_outcome(obj: Any, step: Mapping[str, Any], result: Mapping[str, Any],
                            now: str | None = None) -> dict[str, Any]:
    return instance.outcome(_object(obj, "ServiceInstance", "serviceinstance_outcome"), step, result or {}, now)


def servicecredential_step(obj: Any, facts: Mapping[str, Any], now: str | None = None) -> dict[str, Any]:
    return credential.step(_object(obj, "ServiceCredential", "servicecredential_step"), facts or {}, now)


def servicecredential_outcome(obj: Any, step: Mapping[str, Any], result: Mapping[str, Any],
                              now: str | None = None) -> dict[str, Any]:
    return credential.outcome(_object(obj, "ServiceCredential", "servicecredential_outcome"), step, result or {},
                              now)


def servicecredential_secret_name(obj: Any) -> str:
    return credential.secret_name(_object(obj, "ServiceCredential", "servicecredential_secret_name"))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "serviceinstance_step": serviceinstance_step,
            "serviceinstance_outcome": serviceinstance_outcome,
            "servicecredential_step": servicecredential_step,
            "servicecredential_outcome": servicecredential_outcome,
            "servicecredential_secret_name": servicecredential_secret_name,
        }
