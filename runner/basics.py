"""The Kubernetes basics the runner shares with the roles' plugins: label selectors, Go
durations, condition merging and metav1 times, written once in the in-tree collection
``playbook_operator.kube`` (``collections/ansible_collections/playbook_operator/kube/plugins/module_utils/``).

Ansible finds those files through its collection loader: a run's ``ANSIBLE_COLLECTIONS_PATH``
starts with the in-tree ``collections/`` (`runner.ansible`), and AnsiballZ packs them into the
payload of a module that imports them. The runner finds them here: the in-tree ``collections/``
goes first on ``sys.path``, once, so ``ansible_collections`` is a namespace package made of it
and of any other ``ansible_collections`` directory on the path (the ``ansible`` package's, in
site-packages), as it would be for Ansible.

Only the operator's own process imports this. The processes that run Ansible (the warm servers
of `runner.forkserver` and the shims of `runner.warm`) and the hook inside every process of a
run (`runner.ownerrefs`) never do: Ansible installs its own importer of ``ansible_collections``,
which a namespace package imported before it would stand in front of.
"""

from __future__ import annotations

import sys
from pathlib import Path

IN_TREE_COLLECTIONS = Path(__file__).resolve().parent.parent / "collections"

if str(IN_TREE_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(IN_TREE_COLLECTIONS))

from ansible_collections.playbook_operator.kube.plugins.module_utils import (  # noqa: E402
    conditions,
    durations,
    selectors,
    times,
)

__all__ = ["IN_TREE_COLLECTIONS", "conditions", "durations", "selectors", "times"]
