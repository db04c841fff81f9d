#!/usr/bin/python

DOCUMENTATION = r"""
module: k8s_event
short_description: Create or update a Kubernetes Event
version_added: "0.0.1"
author: playbook-operator
description:
  - Emits a core/v1 Event, usually about the object a role reconciles.
  - The same parameters as the Operator SDK's C(operator_sdk.util.k8s_event).
  - When an Event of that name exists with the same reason, its C(count) goes up by one, its
    C(firstTimestamp) stays and its C(lastTimestamp) moves to now; with another reason it
    starts again at 1. A new Event starts at 1.
  - The C(uid) and C(resourceVersion) of O(involvedObject) are looked up when the object exists.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  state:
    description:
      - C(present) emits the Event. C(absent) deletes the Event of that name if there is one.
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - Name of the Event.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the Event. The apiserver requires it to be the involved object's namespace.
    type: str
    required: true
  merge_type:
    description:
      - Accepted for compatibility with the SDK's module, which ignores it too. An existing Event is
        updated with a C(PUT) carrying the C(resourceVersion) that was read.
    type: list
    elements: str
    choices: [json, merge, strategic-merge]
  message:
    description:
      - A human readable description of what happened.
    type: str
    required: true
  reason:
    description:
      - Why the Event was emitted, short and machine readable (usually CamelCase).
    type: str
    required: true
  reportingComponent:
    description:
      - Name of the controller that emitted the Event, for example C(playbook-operator).
    type: str
  reportingInstance:
    description:
      - ID of the controller instance that emitted the Event, for example the pod name.
      - Not in the SDK's module.
    type: str
  type:
    description:
      - Type of the Event.
    type: str
    choices: [Normal, Warning]
  appendTimestamp:
    description:
      - Append C(.<hex nanoseconds>) to O(name), so each task run creates a new Event.
    type: bool
    default: false
  source:
    description:
      - The component reporting the Event.
    type: dict
    suboptions:
      component:
        description: Component that reports the Event.
        type: str
        required: true
      host:
        description: Node name on which the Event is generated. Not in the SDK's module.
        type: str
  involvedObject:
    description:
      - The object the Event is about.
    type: dict
    suboptions:
      apiVersion:
        description: API version of the object.
        type: str
        required: true
      kind:
        description: Kind of the object.
        type: str
        required: true
      name:
        description: Name of the object.
        type: str
        required: true
      namespace:
        description:
          - Namespace of the object. Defaults to O(namespace) for namespaced kinds (the SDK requires it).
        type: str
attributes:
  check_mode:
    description: Reports the Event that would be written, without writing it.
    support: full
  diff_mode:
    description: Not supported.
    support: none
requirements:
  - kubernetes >= 24.2.0
  - kubernetes.core >= 6.0.0
"""

EXAMPLES = r"""
- name: Tell users what the role did to their custom resource
  operator_sdk.util.k8s_event:
    name: "{{ ansible_operator_meta.name }}-scaled"
    namespace: "{{ ansible_operator_meta.namespace }}"
    reason: Scaled
    message: "Scaled to {{ replicas }} replicas"
    type: Normal
    reportingComponent: playbook-operator
    source:
      component: playbook-operator
    involvedObject:
      apiVersion: apps.example.com/v1alpha1
      kind: TestCR
      name: "{{ ansible_operator_meta.name }}"
      namespace: "{{ ansible_operator_meta.namespace }}"

- name: A new Event on every run
  operator_sdk.util.k8s_event:
    name: backup
    namespace: testing
    reason: BackupTaken
    message: A backup was taken
    appendTimestamp: true
    involvedObject:
      apiVersion: v1
      kind: Service
      name: database
"""

RETURN = r"""
result:
  description:
    - The Event as written (in check mode, as it would be written). For C(state=absent), the Event that
      was deleted, or an empty dict.
  returned: success
  type: complex
  contains:
    metadata:
      description: Standard object metadata (name, namespace, resourceVersion...).
      returned: success
      type: dict
    count:
      description: How many times the Event has occurred.
      returned: success
      type: int
    message:
      description: A human readable description of what happened.
      returned: success
      type: str
    reason:
      description: Why the Event was emitted.
      returned: success
      type: str
    type:
      description: Normal or Warning.
      returned: when set
      type: str
    firstTimestamp:
      description: When the Event first occurred.
      returned: success
      type: str
    lastTimestamp:
      description: When the Event last occurred.
      returned: success
      type: str
    involvedObject:
      description: The object the Event is about.
      returned: when set
      type: dict
    source:
      description: The component reporting the Event.
      returned: when set
      type: dict
    reportingComponent:
      description: Name of the controller that emitted the Event.
      returned: when set
      type: str
"""

import time
import traceback
from typing import Any

from ansible_collections.operator_sdk.util.plugins.module_utils.event import event_name, next_event
from ansible_collections.operator_sdk.util.plugins.module_utils.kube import (
    api_client,
    api_error,
    api_error_message,
    auth_arg_spec,
    is_not_found,
    lookup_resource,
    new_module,
    retry_on_conflict,
)
from ansible_collections.operator_sdk.util.plugins.module_utils.status import now_rfc3339

EVENT_ARG_SPEC: dict[str, Any] = {
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "merge_type": {"type": "list", "elements": "str", "choices": ["json", "merge", "strategic-merge"]},
    "message": {"type": "str", "required": True},
    "reason": {"type": "str", "required": True},
    "reportingComponent": {"type": "str"},
    "reportingInstance": {"type": "str"},
    "type": {"type": "str", "choices": ["Normal", "Warning"]},
    "appendTimestamp": {"type": "bool", "default": False},
    "source": {
        "type": "dict",
        "options": {"component": {"type": "str", "required": True}, "host": {"type": "str"}},
    },
    "involvedObject": {
        "type": "dict",
        "options": {
            "apiVersion": {"type": "str", "required": True},
            "kind": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str"},
        },
    },
}


def argument_spec() -> dict[str, Any]:
    spec = auth_arg_spec()
    spec.update(EVENT_ARG_SPEC)
    return spec


def _without_nulls(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else {k: v for k, v in value.items() if v is not None}


def involved_object(client: Any, given: dict[str, Any] | None, event_namespace: str) -> dict[str, Any] | None:
    """The involvedObject reference, completed with the object's uid and resourceVersion
    when it can be read (a missing kind or object is not an error, as in the SDK)."""
    ref = _without_nulls(given)
    if ref is None:
        return None
    resource = lookup_resource(client, ref["kind"], ref["apiVersion"])
    if resource is not None and not resource.namespaced:
        ref.pop("namespace", None)
    else:
        # The apiserver rejects a legacy Event whose namespace differs from its object's.
        ref.setdefault("namespace", event_namespace)
    if resource is None:
        return ref
    try:
        obj = resource.get(name=ref["name"], namespace=ref.get("namespace")).to_dict()
    except Exception as exc:
        if is_not_found(exc):
            return ref
        raise
    ref["uid"] = obj["metadata"]["uid"]
    ref["resourceVersion"] = obj["metadata"]["resourceVersion"]
    return ref


def main() -> None:
    module = new_module(argument_spec(), supports_check_mode=True)
    params = module.params
    namespace = params["namespace"]
    now = now_rfc3339()
    absent = params["state"] == "absent"
    name = event_name(params["name"], params["appendTimestamp"] and not absent, time.time_ns())

    client = api_client(module)
    try:
        events = client.resource("Event", "v1")

        def read() -> dict[str, Any] | None:
            try:
                return events.get(name=name, namespace=namespace).to_dict()
            except Exception as exc:
                if is_not_found(exc):
                    return None
                raise

        if absent:
            existing = read()
            if existing is not None and not module.check_mode:
                try:
                    events.delete(name=name, namespace=namespace)
                except Exception as exc:
                    if not is_not_found(exc):
                        raise
            module.exit_json(changed=existing is not None, result=existing or {})

        fields = {
            "message": params["message"],
            "reason": params["reason"],
            "type": params["type"],
            "source": _without_nulls(params["source"]),
            "reportingComponent": params["reportingComponent"],
            "reportingInstance": params["reportingInstance"],
            "involvedObject": involved_object(client, params["involvedObject"], namespace),
        }

        def attempt() -> dict[str, Any]:
            existing = read()
            event = next_event(existing, name=name, namespace=namespace, fields=fields, now=now)
            if module.check_mode:
                return event
            if existing is None:
                return events.create(body=event, namespace=namespace).to_dict()
            # The resourceVersion read is in the body: a concurrent update makes this a 409
            # and the count is bumped again from the newer Event.
            return events.replace(body=event, namespace=namespace).to_dict()

        result = retry_on_conflict(attempt)
    except Exception as exc:
        what = f"Unable to write event {name}"
        if hasattr(exc, "status") and hasattr(exc, "body"):
            module.fail_json(msg=f"{what}: {api_error_message(exc)}", error=api_error(exc))
        module.fail_json(msg=f"{what}: {exc}", exception=traceback.format_exc())

    module.exit_json(changed=True, result=result)


if __name__ == "__main__":
    main()
