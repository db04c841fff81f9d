#!/usr/bin/python

DOCUMENTATION = r"""
module: requeue_after
short_description: Ask the operator to reconcile the object again after a delay
version_added: "0.0.1"
author: playbook-operator
description:
  - Reports a delay after which playbook-operator reconciles the current object again. The operator
    reads RV(requeue_after) from the task result once the run is over.
  - The same parameter as the Operator SDK's C(operator_sdk.util.requeue_after), but nothing else
    happens here. The play goes on, and the operator still writes the final status; the SDK's
    operator ends the reconciliation at this task instead.
  - Changes nothing, so it always reports C(changed=false).
options:
  time:
    description:
      - A Go duration, the format the SDK hands to C(time.ParseDuration) - numbers with a unit each,
        C(ns), C(us), C(ms), C(s), C(m) or C(h), such as C(30s), C(1m), C(1h30m) or C(1.5h).
      - A negative duration, a number without a unit or an unknown unit fails the task.
    type: str
    required: true
attributes:
  check_mode:
    description: The same result as without check mode.
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
"""

EXAMPLES = r"""
- name: Look again in five minutes
  operator_sdk.util.requeue_after:
    time: 5m

- name: Poll faster while something is still starting
  operator_sdk.util.requeue_after:
    time: 10s
  when: not (deployment_ready | bool)
"""

RETURN = r"""
requeue_after:
  description: The delay in seconds.
  returned: success
  type: float
  sample: 5400.0
time:
  description: The duration as given.
  returned: success
  type: str
  sample: 1h30m
period:
  description: The duration as given, under the name the SDK's module returns it.
  returned: success
  type: str
  sample: 1h30m
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.operator_sdk.util.plugins.module_utils.requeue import requeue_result


# In a play, Ansible runs the action plugin of the same name (plugins/action/requeue_after.py) in
# its place: the same result, without a module run.
def main() -> None:
    spec = {"time": {"type": "str", "required": True}}
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    result = requeue_result(module.params["time"])
    if result.get("failed"):
        module.fail_json(**{k: v for k, v in result.items() if k != "failed"})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
