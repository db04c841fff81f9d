"""What the modules share to talk to the apiserver. Authentication and the client come
from kubernetes.core, so the auth options and K8S_AUTH_* variables behave exactly as in
kubernetes.core.k8s; this file only adds resource lookup, error reporting and retrying
a write that lost an optimistic-concurrency race."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, TypeVar

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

try:
    from kubernetes.dynamic.exceptions import (
        DynamicApiError,
        NotFoundError,
        ResourceNotFoundError,
        ResourceNotUniqueError,
    )

    HAS_KUBERNETES = True
except ImportError:
    # AnsibleK8SModule reports the missing library before any of these is used.
    HAS_KUBERNETES = False

T = TypeVar("T")

# Name options as the SDK declares them for k8s_status (kind and name required).
NAME_ARG_SPEC: dict[str, dict[str, Any]] = {
    "api_version": {"type": "str", "default": "v1", "aliases": ["api", "version"]},
    "kind": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
}

# How often a write is retried after a 409 before giving up.
CONFLICT_ATTEMPTS = 5


def auth_arg_spec() -> dict[str, Any]:
    """kubernetes.core's auth options (no_log on secrets included), as a fresh copy."""
    return copy.deepcopy(AUTH_ARG_SPEC)


def new_module(argument_spec: dict[str, Any], **kwargs: Any) -> Any:
    """An AnsibleK8SModule: it fails cleanly when the kubernetes library is missing."""
    return AnsibleK8SModule(argument_spec=argument_spec, **kwargs)


def api_client(module: Any) -> Any:
    try:
        return get_api_client(module=module)
    except CoreException as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # a bad kubeconfig surfaces as many exception types
        module.fail_json(msg=f"Could not create a Kubernetes API client: {exc}")


def lookup_resource(client: Any, kind: str, api_version: str) -> Any:
    """The API resource for kind (or its plural, singular or short name) in api_version,
    or None when the apiserver serves no such kind."""
    try:
        return client.resource(kind, api_version)
    except (ResourceNotFoundError, ResourceNotUniqueError):
        return None


def find_resource(module: Any, client: Any, kind: str, api_version: str) -> Any:
    """lookup_resource, failing the task when there is no such kind."""
    resource = lookup_resource(client, kind, api_version)
    if resource is None:
        tried = "[kind, name, singularName, shortNames]"
        module.fail_json(msg=f"Failed to find exact match for {api_version}.{kind} by {tried}")
    return resource


def api_error(exc: Exception) -> dict[str, Any]:
    """The parts of an API error worth returning to the play."""
    return {
        "status": getattr(exc, "status", None),
        "reason": getattr(exc, "reason", None),
        "body": getattr(exc, "body", None),
    }


def api_error_message(exc: Exception) -> str:
    """The apiserver's own sentence from a Status body, else whatever the exception says."""
    body = getattr(exc, "body", None)
    try:
        message = json.loads(body)["message"] if body else None
    except (TypeError, ValueError, KeyError):
        message = None
    if message:
        return f"{message} ({getattr(exc, 'status', '?')})"
    return str(getattr(exc, "reason", None) or exc)


def is_conflict(exc: Exception) -> bool:
    return isinstance(exc, DynamicApiError) and getattr(exc, "status", None) == 409


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, NotFoundError)


def retry_on_conflict(attempt: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run `attempt` (which reads, decides and writes with the resourceVersion it read)
    again after a 409 Conflict, up to `attempts` times; the last conflict is raised."""
    for _ in range(attempts - 1):
        try:
            return attempt()
        except Exception as exc:
            if not is_conflict(exc):
                raise
    return attempt()
