#!/usr/bin/python

DOCUMENTATION = r"""
module: osdk_metric
short_description: Define or update a Prometheus metric the operator serves
version_added: "0.0.1"
author: playbook-operator
description:
  - Sends one metric request to the operator's user-metrics endpoint. The operator serves the metric
    on C(/metrics) beside its own, under the name given here.
  - The same parameters and endpoint as the Operator SDK's C(operator_sdk.util.osdk_metric). The
    endpoint is the one playbook-operator names for the run (C(--user-metrics-bind-address)), else the
    SDK's C(http://localhost:5050/metrics).
  - The first request for a name fixes its kind and description. Give one kind per task. Within a kind,
    the first operation given in the order listed below is applied; none only creates the metric.
  - Metrics are the operator's own counters, not cluster state, so the task always reports
    C(changed=false). Where the operator serves no endpoint (C(playbook-operator reconcile), or
    C(--user-metrics-bind-address 0)), nothing is recorded and the task warns.
options:
  name:
    description: The metric's name, a Prometheus metric name.
    type: str
    required: true
  description:
    description: The metric's help text.
    type: str
    default: ""
  counter:
    description: A counter. C(increment) adds 1; C(add) adds a value of 0 or more.
    type: dict
    suboptions:
      increment: {description: Add 1., type: bool}
      add: {description: Add this much (not negative)., type: float}
  gauge:
    description: A gauge. C(set) of 0 does nothing, as in the SDK.
    type: dict
    suboptions:
      increment: {description: Add 1., type: bool}
      decrement: {description: Take 1 away., type: bool}
      add: {description: Add this much., type: float}
      subtract: {description: Take this much away., type: float}
      set: {description: Set to this value., type: float}
      set_to_current_time: {description: Set to the current Unix time., type: bool}
  histogram:
    description: A histogram with the Prometheus Go client's default buckets.
    type: dict
    suboptions:
      observe: {description: Record one observation., type: float}
  summary:
    description: A summary (count and sum).
    type: dict
    suboptions:
      observe: {description: Record one observation., type: float}
attributes:
  check_mode:
    description: Nothing is sent.
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
"""

EXAMPLES = r"""
- name: Count each backup taken
  operator_sdk.util.osdk_metric:
    name: backups_taken
    description: Backups this operator has taken
    counter:
      increment: true

- name: Record how long the backup took
  operator_sdk.util.osdk_metric:
    name: backup_seconds
    description: How long each backup took
    histogram:
      observe: "{{ backup.delta_seconds }}"
"""

RETURN = r"""
metric:
  description: The request as sent (or, in check mode, as it would have been).
  returned: always
  type: dict
  sample: {"name": "backups_taken", "description": "Backups this operator has taken", "counter": {"increment": true}}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

# The SDK's endpoint, which its own module has built in; the operator names its own per run.
SDK_ENDPOINT = "http://localhost:5050/metrics"
ENDPOINT_ENV = "PLAYBOOK_OPERATOR_USER_METRICS_URL"
KINDS = ("counter", "gauge", "histogram", "summary")


def main() -> None:
    number = {"type": "float"}
    flag = {"type": "bool"}
    observe = {"type": "dict", "options": {"observe": number}}
    spec = {
        "name": {"type": "str", "required": True},
        "description": {"type": "str", "default": ""},
        "counter": {"type": "dict", "options": {"increment": flag, "add": number}},
        "gauge": {"type": "dict", "options": {"increment": flag, "decrement": flag, "add": number,
                                              "subtract": number, "set": number, "set_to_current_time": flag}},
        "histogram": observe,
        "summary": observe,
    }
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[KINDS], required_one_of=[KINDS])
    params = module.params
    kind = next(k for k in KINDS if params[k] is not None)
    request = {"name": params["name"], "description": params["description"],
               kind: {k: v for k, v in params[kind].items() if v is not None}}
    endpoint = os.environ.get(ENDPOINT_ENV, SDK_ENDPOINT)
    if module.check_mode:
        module.exit_json(changed=False, metric=request)
    if not endpoint:
        module.warn(f"metric {params['name']} not recorded: the operator serves no user-metrics endpoint")
        module.exit_json(changed=False, metric=request)
    try:
        open_url(endpoint, data=json.dumps(request), method="POST", timeout=10,
                 headers={"Content-Type": "application/json"})
    except Exception as err:  # HTTPError carries the endpoint's answer: why the request was refused
        answer = err.read().decode(errors="replace") if hasattr(err, "read") else str(err)
        module.fail_json(msg=f"metric {params['name']}: {answer}", metric=request)
    module.exit_json(changed=False, metric=request)


if __name__ == "__main__":
    main()
