"""Run by every Python process of an operator run: its directory is first on the run's
PYTHONPATH (`runner.ownerrefs.pythonpath`), which Ansible, the warm servers and every module
interpreter inherit, whichever interpreter a play names.

It installs `runner.ownerrefs` (which does nothing for a call made without an owner in the
environment), then leaves the process as it would have been: this directory off ``sys.path``,
and the next ``sitecustomize`` on the path (the user's, or the distribution's) run in its place.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _install_owner_refs() -> None:
    # By file, not `import runner`: a play may name an interpreter this package is not installed in.
    spec = importlib.util.spec_from_file_location("_playbook_operator_ownerrefs",
                                                  os.path.join(os.path.dirname(_HERE), "ownerrefs.py"))
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.install()


def _run_the_next_sitecustomize() -> None:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize")
    if spec is None or spec.loader is None:
        return
    # Under the name site imported this one, as site would have imported it.
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _install_owner_refs()
finally:
    _run_the_next_sitecustomize()
