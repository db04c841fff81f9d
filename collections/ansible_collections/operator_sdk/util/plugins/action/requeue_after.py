"""operator_sdk.util.requeue_after answered in Ansible's own process: it only reads its argument,
so a module run (a process, a payload) would cost a reconcile more than the answer. The module
beside it (plugins/modules/requeue_after.py) documents it and gives the same result."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.operator_sdk.util.plugins.module_utils.requeue import requeue_result

ARGUMENT_SPEC = {"time": {"type": "str", "required": True}}


class ActionModule(ActionBase):  # type: ignore[misc]  # Ansible is not type-checked here
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        result = dict(super().run(tmp, task_vars))
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(requeue_result(args["time"]))
        return result
