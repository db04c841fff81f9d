"""Owner references without asking, as the Operator SDK's proxy adds them on create.

It wraps the kubernetes client's dynamic `request` (what every kubernetes.core module calls)
in every Python process of an operator run: `runner.ansible` puts ``runner/pythonpath`` first
on each run's PYTHONPATH (`pythonpath`), and the ``sitecustomize`` there installs this module
at start-up, in ansible-playbook, in the warm servers (`runner.forkserver`) and so in their
jobs, and in every module interpreter, warm, cold or named by a play. A task that sets its own
PYTHONPATH in ``environment`` replaces the run's, and its module goes without.

When a run is for a custom resource (``PLAYBOOK_OPERATOR_OWNER`` in the process's environment
at the time of the call), an object created in the owner's namespace gets an owner reference
to it; one created elsewhere (another namespace, or cluster-scoped) gets the SDK's
``operator-sdk/primary-resource`` annotations instead. Objects whose body already
names the owner are left as they are. Each created kind is appended to
``PLAYBOOK_OPERATOR_DEPENDENTS`` so the operator can watch it. Without an owner every call
goes through untouched and nothing is recorded.

Reads are reported too: every GET by name and every LIST (with its label selector) a run makes
through the client's ``get``, whether it found anything or not, becomes a line with a ``read``
entry, so an object the role depends on without owning it (a Secret it projects, a workload it
selects, a service that does not exist yet) reconciles the owner when it appears or changes.
Reads of the owner itself and of Events are not reported: neither is what a role depends on.

Only the standard library here: the sitecustomize loads this file into interpreters that may
not have the operator's packages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

OWNER_ENV = "PLAYBOOK_OPERATOR_OWNER"
DEPENDENTS_ENV = "PLAYBOOK_OPERATOR_DEPENDENTS"
PRIMARY_RESOURCE = "operator-sdk/primary-resource"
PRIMARY_RESOURCE_TYPE = "operator-sdk/primary-resource-type"
APPLY_PATCH = "application/apply-patch+yaml"

_NAMESPACE_IN_PATH = re.compile(r"/namespaces/([^/]+)/")

# Holds only a sitecustomize, so it shadows nothing else on the path.
SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pythonpath")


def pythonpath(existing: str | None) -> str:
    """PYTHONPATH for a run's processes: the hook's directory, then the run's own path, if any."""
    return os.pathsep.join([SITE_DIR, existing]) if existing else SITE_DIR


def owner_from_env(env: Mapping[str, str]) -> dict[str, str] | None:
    raw = env.get(OWNER_ENV)
    if not raw:
        return None
    try:
        owner = json.loads(raw)
    except ValueError:
        return None
    if not all(owner.get(k) for k in ("apiVersion", "kind", "name", "uid")):
        return None
    return {k: str(v) for k, v in owner.items()}


def target_namespace(path: str, body: Mapping[str, Any]) -> str | None:
    meta = body.get("metadata") or {}
    if meta.get("namespace"):
        return str(meta["namespace"])
    match = _NAMESPACE_IN_PATH.search(path)
    return match.group(1) if match else None


def inject(body: dict[str, Any], path: str, owner: Mapping[str, str]) -> dict[str, Any]:
    """The body with the owner recorded on it (a new dict; the caller's is not changed)."""
    meta = dict(body.get("metadata") or {})
    namespace = target_namespace(path, body)
    refs = list(meta.get("ownerReferences") or [])
    if any(r.get("uid") == owner["uid"] for r in refs):
        return body
    if namespace and namespace == owner.get("namespace"):
        has_controller = any(r.get("controller") for r in refs)
        refs.append({
            "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["name"],
            "uid": owner["uid"], "controller": not has_controller, "blockOwnerDeletion": True,
        })
        meta["ownerReferences"] = refs
    else:
        group = owner["apiVersion"].rpartition("/")[0]
        annotations = dict(meta.get("annotations") or {})
        annotations.setdefault(PRIMARY_RESOURCE, f"{owner.get('namespace', '')}/{owner['name']}")
        annotations.setdefault(PRIMARY_RESOURCE_TYPE, f"{owner['kind']}.{group}")
        meta["annotations"] = annotations
    return {**body, "metadata": meta}


def _is_create(method: str, params: Mapping[str, Any]) -> bool:
    method = method.upper()
    if method == "POST":
        return True
    # Server-side apply creates what does not exist yet, so it carries the reference too.
    return method == "PATCH" and params.get("content_type") == APPLY_PATCH


def _record_dependent(body: Mapping[str, Any], path: str) -> None:
    out = os.environ.get(DEPENDENTS_ENV)
    if not out or not body.get("kind") or not body.get("apiVersion"):
        return
    namespaced = target_namespace(path, body) is not None
    try:
        with open(out, "a") as f:
            f.write(json.dumps({"apiVersion": body["apiVersion"], "kind": body["kind"],
                                "namespaced": namespaced}) + "\n")
    except OSError:
        pass


def read_entry(api_version: str, kind: str, namespaced: bool, *, namespace: str | None, name: str | None,
               label_selector: str | None, owner: Mapping[str, str]) -> dict[str, Any] | None:
    """The line that reports one read, or None for reads not worth watching."""
    if not kind or not api_version or kind.endswith("List") or kind == "Event":
        return None
    if (api_version == owner.get("apiVersion") and kind == owner.get("kind") and name == owner.get("name")
            and (namespace or "") == (owner.get("namespace") or "")):
        return None
    return {"apiVersion": api_version, "kind": kind, "namespaced": bool(namespaced),
            "read": {"namespace": namespace or "", "name": name or "", "labelSelector": label_selector or ""}}


def _record_read(resource: Any, name: Any, namespace: Any, label_selector: Any, owner: Mapping[str, str]) -> None:
    out = os.environ.get(DEPENDENTS_ENV)
    if not out:
        return
    try:
        entry = read_entry(str(resource.group_version), str(resource.kind), bool(resource.namespaced),
                           namespace=namespace if isinstance(namespace, str) else None,
                           name=name if isinstance(name, str) else None,
                           label_selector=label_selector if isinstance(label_selector, str) else None, owner=owner)
    except AttributeError:
        return
    if entry is None:
        return
    try:
        with open(out, "a") as f:
            f.write(json.dumps(entry) + "\n")
    except OSError:
        pass


class _PatchOnImport:
    """Patches the kubernetes client right after a module imports it, so an interpreter that
    never talks to Kubernetes never pays for importing the client. (A meta path finder by
    protocol: importlib.abc alone would cost every process of a run milliseconds to import.)"""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _DYNAMIC_CLIENT:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            original_exec(module)
            _wrap(module.DynamicClient)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_DYNAMIC_CLIENT = "kubernetes.dynamic.client"


def install() -> None:
    """Patch now if the client is loaded, else as soon as something imports it."""
    if _DYNAMIC_CLIENT in sys.modules:
        _wrap(sys.modules[_DYNAMIC_CLIENT].DynamicClient)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def _record_if_owned(result: Any, path: str, owner: Mapping[str, str]) -> None:
    try:
        kind, api_version = result.kind, result.apiVersion
        refs = result.metadata.ownerReferences or []
    except AttributeError:
        return
    if kind and not str(kind).endswith("List") and any(r.uid == owner["uid"] for r in refs):
        _record_dependent({"kind": kind, "apiVersion": api_version, "metadata": {}}, path)


def _wrap(cls: Any) -> None:
    if getattr(cls.request, "_playbook_operator_owner_refs", False):
        return
    original = cls.request

    def request(self: Any, method: str, path: str, body: Any = None, **params: Any) -> Any:
        owner = owner_from_env(os.environ)
        if owner is not None and _is_create(method, params):
            decoded = body
            if isinstance(body, (str, bytes)):
                try:
                    decoded = json.loads(body)
                except ValueError:
                    decoded = None
            if isinstance(decoded, dict) and "/subresources/" not in path and not path.endswith("/status"):
                decoded = inject(decoded, path, owner)
                _record_dependent(decoded, path)
                body = decoded if isinstance(body, dict) else json.dumps(decoded)
        result = original(self, method, path, body, **params)
        if owner is not None and method.upper() == "GET":
            # An object the owner already owns (created by an earlier run, perhaps before a
            # restart) is a dependent as much as a new one.
            _record_if_owned(result, path, owner)
        return result

    request._playbook_operator_owner_refs = True  # type: ignore[attr-defined]
    cls.request = request

    original_get = cls.get

    def get(self: Any, resource: Any, name: Any = None, namespace: Any = None, **params: Any) -> Any:
        owner = owner_from_env(os.environ)
        if owner is not None:
            # Recorded before the call: a read that finds nothing (404) matters as much.
            _record_read(resource, name, namespace, params.get("label_selector"), owner)
        return original_get(self, resource, name=name, namespace=namespace, **params)

    cls.get = get
