"""The few Kubernetes API calls the operator makes itself: read an object, write its
status, manage its finalizer, post Events. Synchronous; callers run them in threads.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from runner.status import now

JSON_PATCH = "application/json-patch+json"
log = logging.getLogger("playbook_operator.kube")


@dataclass(frozen=True)
class ResourceRef:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def load_config() -> None:
    """The kubeconfig that KUBECONFIG (or ~/.kube/config) names, else the in-cluster account."""
    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config()  # type: ignore[no-untyped-call]


def default_namespace() -> str:
    """The current kubeconfig context's namespace, as kubectl takes it; else default."""
    try:
        _, context = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return "default"
    return str((context or {}).get("context", {}).get("namespace") or "default")


def may(verbs: tuple[str, ...], group: str, resource: str, namespace: str = "",
        api_client: client.ApiClient | None = None) -> bool:
    """Whether this operator's account may do each of `verbs` on `resource` (cluster-wide when
    `namespace` is ""), asked through SelfSubjectAccessReviews, which every authenticated
    account may create: a request refused for lack of rights is never made."""
    auth = client.AuthorizationV1Api(api_client or client.ApiClient())
    for verb in verbs:
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(group=group, resource=resource, verb=verb,
                                                            namespace=namespace or None)))
        status = auth.create_self_subject_access_review(review).status
        if status is None or not status.allowed:
            return False
    return True


class Kube:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self._events = EventRecorder(self.core)

    def plural_for(self, group: str, version: str, kind: str) -> ResourceRef:
        """Find a kind's plural and scope through discovery."""
        if group:
            resources = client.CustomObjectsApi(self.api).get_api_resources(group, version).resources
        else:
            resources = client.CoreV1Api(self.api).get_api_resources().resources
        for res in resources:
            if res.kind == kind and "/" not in res.name:
                return ResourceRef(group, version, kind, res.name, bool(res.namespaced))
        raise LookupError(f"the cluster serves no kind {kind} in {group or 'core'}/{version}")

    def get(self, ref: ResourceRef, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            if ref.namespaced:
                obj = self.custom.get_namespaced_custom_object(ref.group, ref.version, namespace or "", ref.plural,
                                                               name)
            else:
                obj = self.custom.get_cluster_custom_object(ref.group, ref.version, ref.plural, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return _as_dict(obj)

    def patch_status(self, ref: ResourceRef, obj: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        # A merge patch would leave removed conditions behind; replace `status` as a whole,
        # guarded by the resourceVersion we read so a concurrent writer is never overwritten.
        body = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                             "resourceVersion": meta["resourceVersion"]},
                "status": dict(status)}
        if ref.namespaced:
            out = self.custom.replace_namespaced_custom_object_status(
                ref.group, ref.version, meta["namespace"], ref.plural, meta["name"], body)
        else:
            out = self.custom.replace_cluster_custom_object_status(ref.group, ref.version, ref.plural, meta["name"],
                                                                   body)
        return _as_dict(out)

    def update_status(self, ref: ResourceRef, namespace: str | None, name: str,
                      compute: Callable[[dict[str, Any]], dict[str, Any] | None],
                      attempts: int = 5) -> dict[str, Any] | None:
        """Read the object, let `compute` derive the new status from it, write it if it differs.

        `compute` returns None to write nothing. A conflict (someone wrote in between, often
        the role itself through k8s_status) re-reads and recomputes. Returns the object as
        written, or None when nothing was.
        """
        for _ in range(attempts):
            obj = self.get(ref, namespace, name)
            if obj is None:
                return None
            new = compute(obj)
            if new is None:
                return None
            try:
                return self.patch_status(ref, obj, new)
            except ApiException as err:
                if err.status != 409:
                    raise
        raise RuntimeError(f"status of {namespace}/{name} kept conflicting after {attempts} attempts")

    def set_finalizers(self, ref: ResourceRef, obj: Mapping[str, Any], finalizers: list[str]) -> dict[str, Any]:
        meta = obj["metadata"]
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "replace" if "finalizers" in meta else "add", "path": "/metadata/finalizers",
             "value": finalizers},
        ]
        if ref.namespaced:
            out = self.custom.patch_namespaced_custom_object(
                ref.group, ref.version, meta["namespace"], ref.plural, meta["name"], patch,
                _content_type=JSON_PATCH)
        else:
            out = self.custom.patch_cluster_custom_object(ref.group, ref.version, ref.plural, meta["name"], patch,
                                                          _content_type=JSON_PATCH)
        return _as_dict(out)

    def event(self, obj: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        """Post an Event. An Event is a note, not state: one the apiserver refuses (a namespace
        being deleted, no right to post) is logged, and the reconcile goes on as it would have."""
        try:
            self._events.record(obj, type_=type_, reason=reason, message=message)
        except ApiException as err:
            meta = obj.get("metadata") or {}
            log.warning("could not post Event %s on %s/%s: %s", reason, meta.get("namespace", ""), meta.get("name"),
                        api_message(err))


def api_message(err: ApiException) -> str:
    """The apiserver's own words for a refused request (its Status message), else the reason."""
    try:
        message = json.loads(err.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or err.reason)


def _as_dict(obj: object) -> dict[str, Any]:
    assert isinstance(obj, dict), f"expected a JSON object from the apiserver, got {type(obj).__name__}"
    return obj


class EventRecorder:
    """Posts core/v1 Events; a repeat of the same reason and message bumps `count`
    on the existing Event instead of creating another (as client-go's recorder does)."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core
        self._seen: dict[tuple[str, str, str, str], tuple[str, int]] = {}
        self._lock = threading.Lock()

    def record(self, obj: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        message = message[:1024]
        key = (meta.get("uid", ""), type_, reason, message)
        stamp = datetime.now(UTC)
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None:
            name, count = seen
            try:
                self.core.patch_namespaced_event(name, namespace, {"count": count + 1, "lastTimestamp": now()})
                with self._lock:
                    self._seen[key] = (name, count + 1)
                return
            except ApiException as err:
                if err.status != 404:
                    raise
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=namespace),
            involved_object=client.V1ObjectReference(
                api_version=obj.get("apiVersion"), kind=obj.get("kind"), name=meta["name"],
                namespace=meta.get("namespace"), uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion")),
            reason=reason, message=message, type=type_, count=1,
            first_timestamp=stamp, last_timestamp=stamp,
            source=client.V1EventSource(component="playbook-operator"),
            reporting_component="playbook-operator", reporting_instance="playbook-operator",
        )
        created = self.core.create_namespaced_event(namespace, body)
        with self._lock:
            self._seen[key] = (str(created.metadata.name), 1)
