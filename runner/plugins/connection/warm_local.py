"""Ansible's ``local`` connection, with each pipelined module run handed straight to the warm
python server (`runner.warm.run_python_job`) instead of through two shells, the interpreter
shim and ``sleep``. Anything else (commands, files, become, another interpreter, no server
listening) is the ``local`` connection's own.

The runner names it in the inventory of every warm run, from ANSIBLE_CONNECTION_PLUGINS.
"""

from __future__ import annotations

import os

from ansible.plugins.connection.local import Connection as LocalConnection

try:
    from runner import warm
except ImportError:  # a run whose Ansible cannot import the runner takes the local path
    warm = None  # type: ignore[assignment]

DOCUMENTATION = """
    name: warm_local
    short_description: run modules in playbook-operator's warm python server
    description:
        - The local connection, with pipelined module runs sent to the warm python server.
    author: playbook-operator
    options:
        become_success_timeout:
            type: int
            default: 10
            description:
                - As the local connection's.
            vars:
                - name: ansible_local_become_success_timeout
        become_strip_preamble:
            type: bool
            default: true
            description:
                - As the local connection's.
            vars:
                - name: ansible_local_become_strip_preamble
    extends_documentation_fragment:
        - connection_pipelining
"""


class Connection(LocalConnection):  # type: ignore[misc]  # Ansible is not type-checked here
    transport = "warm_local"

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        if warm is not None and in_data is not None and not (sudoable and self.become):
            server = warm.python_server(cmd, os.environ)
            if server is not None:
                path, env = server
                self._connect()
                result = warm.run_python_job(path, env, self.cwd or os.getcwd(), in_data)
                if result is not None:
                    return result
        rc, stdout, stderr = super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        return int(rc), bytes(stdout), bytes(stderr)
