#!/usr/bin/python

DOCUMENTATION = r"""
module: k8s_status
short_description: Update the status of a Kubernetes object
version_added: "0.0.1"
author: playbook-operator
description:
  - Sets fields and conditions under C(status) of a Kubernetes object through its C(status)
    subresource. Meant for roles that implement the controller of that object.
  - The same parameters as the Operator SDK's C(operator_sdk.util.k8s_status).
  - Idempotent. Nothing is written, and C(changed) is false, when the resulting status equals the
    current one.
  - A write carries the C(resourceVersion) that was read; on a 409 Conflict the object is read
    again and the status recomputed, a few times before the task fails.
  - Fails when the resource has no C(status) subresource, as the SDK's module does.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  api_version:
    description:
      - API version of the object, C(group/version) or C(v1).
    type: str
    default: v1
    aliases: [api, version]
  kind:
    description:
      - Kind of the object (its plural, singular or short name also work).
    type: str
    required: true
  name:
    description:
      - Name of the object.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the object; required for namespaced kinds.
    type: str
  status:
    description:
      - Fields to set under C(status).
      - Merged into the current status like a JSON merge patch; a null value removes a key.
      - A list is left as it is when every given item is already in it, and replaced by the given
        list otherwise (see O(replace_lists)).
      - C(conditions) may be given here instead of in O(conditions), not in both. They are then
        merged by type the same way but not validated.
      - One of O(status) or O(conditions) is expected; with neither, nothing changes unless
        O(replace) is set, which empties the status.
    type: dict
  conditions:
    description:
      - Conditions to set on C(status.conditions), validated against the Kubernetes API conventions.
      - Merged by C(type) with the current conditions. A given condition replaces the current one of
        its type as a whole, except C(lastTransitionTime), which is kept while C(status) stays the
        same and set when it changes or the condition is new. Conditions of other types stay.
    type: list
    elements: dict
    suboptions:
      type:
        description:
          - The type of the condition; identifies it among the others.
        type: str
        required: true
      status:
        description:
          - The status of the condition.
        type: str
        required: true
        choices: ["True", "False", "Unknown"]
      reason:
        description:
          - Why the condition has this status, as one CamelCase word.
        type: str
      message:
        description:
          - A human readable explanation.
        type: str
      lastHeartbeatTime:
        description:
          - An RFC 3339 date-time.
        type: str
      lastTransitionTime:
        description:
          - An RFC 3339 date-time. Used when the condition is new or its status changes; the current
            time is used when it is not given. Ignored while the status stays the same.
        type: str
  replace:
    description:
      - Replace the whole status with O(status) and O(conditions) (an HTTP C(PUT) of the status
        subresource) instead of merging into it.
      - Conditions that keep their status keep their C(lastTransitionTime).
    type: bool
    default: false
    aliases: [force]
  replace_lists:
    description:
      - Replace any list under O(status) that differs from the given one, instead of only when it
        lacks a given item. C(conditions) are always merged by type.
    type: bool
    default: false
attributes:
  check_mode:
    description:
      - Reports whether the status would change and what it would be, without writing.
      - An object that does not exist yet (a dry run of a manifest before it is applied) is taken
        to have no status, so the task reports the status it would get. Outside check mode a
        missing object is an error.
    support: full
  diff_mode:
    description: Shows the status before and after.
    support: full
requirements:
  - kubernetes >= 24.2.0
  - kubernetes.core >= 6.0.0
"""

EXAMPLES = r"""
- name: Set custom status fields
  operator_sdk.util.k8s_status:
    api_version: apps.example.com/v1alpha1
    kind: TestCR
    name: my-test
    namespace: testing
    status:
      hello: world
      custom: entries

- name: Set a condition (merged with the operator's own conditions)
  operator_sdk.util.k8s_status:
    api_version: apps.example.com/v1alpha1
    kind: TestCR
    name: my-test
    namespace: testing
    conditions:
      - type: Available
        status: "False"
        reason: PingFailed
        message: The service did not respond to a ping

- name: Replace the whole status (keys not given are removed)
  operator_sdk.util.k8s_status:
    api_version: apps.example.com/v1alpha1
    kind: TestCR
    name: "{{ ansible_operator_meta.name }}"
    namespace: "{{ ansible_operator_meta.namespace }}"
    force: true
    status:
      nodes: [a, b]
"""

RETURN = r"""
result:
  description:
    - The object after the task. In check mode, the object as it would be.
  returned: success
  type: complex
  contains:
    apiVersion:
      description: API version of the object.
      returned: success
      type: str
    kind:
      description: Kind of the object.
      returned: success
      type: str
    metadata:
      description: Standard object metadata.
      returned: success
      type: dict
    spec:
      description: The object's spec, as read.
      returned: when the object has one
      type: dict
    status:
      description: The object's status after the task.
      returned: success
      type: dict
diff:
  description: The status before and after, in diff mode.
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description: A dict with the key C(status), as read.
      type: dict
      returned: when diff mode is on
    after:
      description: A dict with the key C(status), as written (in check mode, as it would be written).
      type: dict
      returned: when diff mode is on
"""

import copy
import traceback
from typing import Any

from ansible_collections.operator_sdk.util.plugins.module_utils.kube import (
    NAME_ARG_SPEC,
    api_client,
    api_error,
    api_error_message,
    auth_arg_spec,
    find_resource,
    is_not_found,
    new_module,
    retry_on_conflict,
)
from ansible_collections.operator_sdk.util.plugins.module_utils.status import (
    StatusError,
    desired_status,
    merge_patch,
    now_rfc3339,
    validate_conditions,
)

CONDITION_OPTIONS = {
    "type": {"type": "str", "required": True},
    "status": {"type": "str", "required": True, "choices": ["True", "False", "Unknown"]},
    "reason": {"type": "str"},
    "message": {"type": "str"},
    "lastHeartbeatTime": {"type": "str"},
    "lastTransitionTime": {"type": "str"},
}

STATUS_ARG_SPEC = {
    "status": {"type": "dict"},
    "conditions": {"type": "list", "elements": "dict", "options": CONDITION_OPTIONS},
    "replace": {"type": "bool", "default": False, "aliases": ["force"]},
    "replace_lists": {"type": "bool", "default": False},
}


def argument_spec() -> dict[str, Any]:
    spec = auth_arg_spec()
    spec.update(copy.deepcopy(NAME_ARG_SPEC))
    spec.update(copy.deepcopy(STATUS_ARG_SPEC))
    return spec


def update_status(
    resource: Any,
    name: str,
    namespace: str | None,
    *,
    status: dict[str, Any] | None,
    conditions: list[dict[str, Any]] | None,
    replace: bool,
    replace_lists: bool,
    now: str,
    check_mode: bool,
) -> dict[str, Any]:
    """Read the object, compute its status, write it when it differs. Returns changed,
    result (the object after) and diff. API errors propagate; 409 Conflicts are retried.
    In check mode an object not created yet counts as one without status."""
    subresource = resource.subresources["status"]
    rules: dict[str, Any] = {"now": now, "replace": replace, "replace_lists": replace_lists}

    def read() -> dict[str, Any]:
        try:
            return dict(resource.get(name=name, namespace=namespace).to_dict())
        except Exception as exc:
            if not (check_mode and is_not_found(exc)):
                raise
            return {"apiVersion": resource.api_version, "kind": resource.kind,
                    "metadata": {"name": name, "namespace": namespace}}

    def attempt() -> dict[str, Any]:
        instance = read()
        before = instance.get("status") or {}
        after = desired_status(before, status, conditions, **rules)
        outcome: dict[str, Any] = {"diff": {"before": {"status": before}, "after": {"status": after}}}
        if after == before:
            return {**outcome, "changed": False, "result": instance}
        if check_mode:
            return {**outcome, "changed": True, "result": {**instance, "status": after}}
        if replace:
            body = {**instance, "status": after}
            written = subresource.replace(body=body, name=name, namespace=namespace)
        else:
            # Only what differs, plus the resourceVersion read: a concurrent writer makes
            # this a 409 instead of a silent overwrite of what it wrote.
            body = {
                "metadata": {"resourceVersion": instance["metadata"]["resourceVersion"]},
                "status": merge_patch(before, after),
            }
            written = subresource.patch(
                body=body, name=name, namespace=namespace, content_type="application/merge-patch+json"
            )
        return {**outcome, "changed": True, "result": written.to_dict()}

    return retry_on_conflict(attempt)


def main() -> None:
    module = new_module(argument_spec(), supports_check_mode=True)
    params = module.params
    now = now_rfc3339()

    try:
        # Validate before touching the cluster, so a bad task fails the same everywhere.
        conditions = validate_conditions(params["conditions"]) if params.get("conditions") else None
        desired_status({}, params.get("status"), conditions, now=now)
    except StatusError as exc:
        module.fail_json(msg=f"The specified status or conditions failed to validate: {exc}")

    client = api_client(module)
    try:
        resource = find_resource(module, client, params["kind"], params["api_version"])
        if "status" not in (resource.subresources or {}):
            module.fail_json(
                msg=f"Resource {resource.api_version}.{resource.kind} does not support the status subresource"
            )
        outcome = update_status(
            resource,
            params["name"],
            params.get("namespace"),
            status=params.get("status"),
            conditions=conditions,
            replace=params["replace"],
            replace_lists=params["replace_lists"],
            now=now,
            check_mode=module.check_mode,
        )
    except ValueError as exc:  # e.g. no namespace for a namespaced kind
        module.fail_json(msg=str(exc))
    except Exception as exc:
        what = f"Failed to update the status of {params['kind']} {params['name']}"
        if hasattr(exc, "status") and hasattr(exc, "body"):
            module.fail_json(msg=f"{what}: {api_error_message(exc)}", error=api_error(exc))
        module.fail_json(msg=f"{what}: {exc}", exception=traceback.format_exc())

    if not module._diff:
        outcome.pop("diff")
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
