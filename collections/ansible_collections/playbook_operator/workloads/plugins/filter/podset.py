"""Filters for the PodSet role: which pods a PodSet owns, adopts and releases, which to
delete first, its status counts, and the whole decision of one reconcile as data.

Everything here is pure: the same pods, PodSet and `now` always give the same answer, so
the role stays a thin loop of API calls and the rules are unit-tested without a cluster.
The semantics are the ReplicaSet controller's (see each function). Documentation for
ansible-doc is in the neighbouring <filter name>.yml files.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.kube.plugins.module_utils import selectors
from ansible_collections.playbook_operator.kube.plugins.module_utils.conditions import merge_conditions
from ansible_collections.playbook_operator.workloads.plugins.module_utils import objects

Pod = Mapping[str, Any]
Selector = Mapping[str, Any]

TERMINAL_PHASES = ("Succeeded", "Failed")
# Less valuable phases first; a phase missing here (none yet, or terminal) ranks as Pending,
# as the zero value of the controller's lookup does.
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _check_pods(pods: Any, what: str = "pods") -> Sequence[Pod]:
    if not isinstance(pods, Sequence) or isinstance(pods, str | bytes):
        raise AnsibleFilterError(f"{what} must be a list of pods, not {type(pods).__name__}")
    for pod in pods:
        if not isinstance(pod, Mapping):
            raise AnsibleFilterError(f"{what} must be a list of pods (objects), found {pod!r}")
    return pods


def _once_each(pods: Sequence[Pod]) -> list[Pod]:
    """The pods with a pod read twice (by two reads that both found it) kept once, by uid, or by
    name where there is no uid."""
    seen: set[str] = set()
    out = []
    for pod in pods:
        key = str(objects.meta(pod).get("uid") or objects.name(pod))
        if key not in seen:
            seen.add(key)
            out.append(pod)
    return out


def podset_is_active(pod: Pod) -> bool:
    """Neither finished (Succeeded/Failed) nor being deleted: the pods a ReplicaSet counts."""
    return objects.phase(pod) not in TERMINAL_PHASES and not objects.being_deleted(pod)


def podset_is_ready(pod: Pod, min_ready_seconds: int = 0, now: Any = None) -> bool:
    """Ready, and with min_ready_seconds > 0 ready for at least that long (available).

    A pod whose Ready condition has no lastTransitionTime cannot prove how long it has been
    ready, so it is not available while min_ready_seconds > 0.
    """
    if not objects.is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = objects.ready_since(pod)
    if since is None:
        return False
    return objects.now(now) - since >= datetime.timedelta(seconds=int(min_ready_seconds))


# --- ranking -------------------------------------------------------------------------


def _age(moment: datetime.datetime | None, now: datetime.datetime) -> tuple[int, datetime.timedelta]:
    # Unset sorts first (the controller's zero time); a time in the future (clock skew between
    # the apiserver and this host) counts as no time at all rather than a negative one.
    if moment is None:
        return (0, datetime.timedelta(0))
    return (1, max(now - moment, datetime.timedelta(0)))


def _deletion_key(pod: Pod, now: datetime.datetime) -> tuple[Any, ...]:
    ready = objects.is_ready(pod)
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,  # unassigned first
        _PHASE_ORDER.get(objects.phase(pod), 0),  # Pending, Unknown, Running
        1 if ready else 0,  # not ready first
        # Only compared between two ready pods (readiness is equal by now): the shorter ready, the sooner.
        _age(objects.ready_since(pod), now) if ready else (0, datetime.timedelta(0)),
        -objects.max_restarts(pod),  # more restarts first
        _age(objects.parse_time(objects.meta(pod).get("creationTimestamp"), "creationTimestamp"), now),  # newer first
        objects.name(pod),
    )


def podset_rank_for_deletion(pods: Sequence[Pod], now: Any = None) -> list[Pod]:
    """The pods ordered least valuable first: the ones to delete when scaling down.

    The ReplicaSet controller's order (ActivePodsWithRanks): unassigned before assigned;
    Pending before Unknown before Running; not ready before ready; between ready pods, ready
    for a shorter time before longer (an unset time first); more container restarts before
    fewer; newer before older (an unset time first); then by name, so the order is total and
    the same on every run. Not used: the controller's pod-deletion-cost and co-location ranks
    (taken as equal) and its logarithmic time buckets (times are compared exactly).
    """
    moment = objects.now(now)
    return sorted(_check_pods(pods), key=lambda pod: _deletion_key(pod, moment))


# --- selectors -----------------------------------------------------------------------


def _selector(selector: Selector) -> selectors.LabelSelector:
    """The selector read and validated as the apiserver would (`playbook_operator.kube`)."""
    try:
        return selectors.label_selector(selector)
    except selectors.SelectorError as err:
        raise AnsibleFilterError(f"invalid label selector: {err}") from None


def podset_selector_matches(labels: Mapping[str, Any] | None, selector: Selector | None) -> bool:
    """Whether labels satisfy a LabelSelector: every matchLabels pair and every expression.

    As in Kubernetes, an empty selector matches everything and a missing one (None) nothing.
    """
    if selector is None:
        return False
    return _selector(selector).matches(labels)


def podset_selector_string(selector: Selector) -> str:
    """The selector as kubectl and the scale subresource print it, e.g. `app=web,tier in (a,b)`.

    Requirements sorted by key (matchLabels before expressions on the same key), values of
    In/NotIn sorted. An empty selector gives "", which selects everything.
    """
    if selector is None:
        raise AnsibleFilterError("a missing selector (None) has no string form")
    return _selector(selector).to_selector_string()


# --- counts, classification, plan ----------------------------------------------------


def podset_counts(pods: Sequence[Pod], selector: Selector | None, min_ready_seconds: int = 0, now: Any = None,
                  template_labels: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Status counts over the active pods the selector matches, as a ReplicaSet reports them.

    fullyLabeledReplicas counts those that also carry every template label (all of them when
    template_labels is empty).
    """
    moment = objects.now(now)
    counted = [pod for pod in _check_pods(pods)
               if podset_is_active(pod) and podset_selector_matches(objects.labels(pod), selector)]
    # The template's labels as a selector: all must be present; no labels select every pod.
    fully = {"matchLabels": dict(template_labels or {})}
    return {
        "replicas": len(counted),
        "readyReplicas": sum(1 for pod in counted if objects.is_ready(pod)),
        "availableReplicas": sum(1 for pod in counted if podset_is_ready(pod, min_ready_seconds, moment)),
        "fullyLabeledReplicas": sum(1 for pod in counted if podset_selector_matches(objects.labels(pod), fully)),
    }


def podset_classify(pods: Sequence[Pod], podset: Mapping[str, Any]) -> dict[str, list[Pod]]:
    """Split the pods of the PodSet's namespace by what the PodSet must do with them (a pod
    listed twice counts once).

    - owned: its controller reference is the PodSet's uid, labels match, active.
    - to_adopt: no controller reference, labels match, active, and the PodSet is not being
      deleted (nothing is adopted by a PodSet on its way out).
    - to_release: owned, active, labels no longer match (unless the PodSet is being deleted).
    - terminal: owned and Succeeded or Failed (whatever the labels): to delete and replace.
    - terminating: owned and being deleted: neither counted nor touched again.
    - ignored: the rest, above all pods another controller owns, which are never touched.
    Pods in another namespace are ignored.
    """
    spec = objects.podset_spec(podset)
    selector = spec.get("selector")
    uid = str(objects.meta(podset).get("uid") or "")
    namespace = objects.meta(podset).get("namespace")
    leaving = objects.being_deleted(podset)
    out: dict[str, list[Pod]] = {k: [] for k in
                                 ("owned", "to_adopt", "to_release", "terminal", "terminating", "ignored")}
    for pod in _once_each(_check_pods(pods)):
        controller = objects.controller_uid(pod)
        same_namespace = namespace is None or objects.meta(pod).get("namespace") in (None, namespace)
        matches = podset_selector_matches(objects.labels(pod), selector)
        if not same_namespace:
            bucket = "ignored"
        elif controller is not None and uid and controller == uid:
            if objects.being_deleted(pod):
                bucket = "terminating"
            elif objects.phase(pod) in TERMINAL_PHASES:
                bucket = "terminal"
            elif matches:
                bucket = "owned"
            else:
                bucket = "ignored" if leaving else "to_release"
        elif controller is None and matches and podset_is_active(pod) and not leaving:
            bucket = "to_adopt"
        else:
            bucket = "ignored"
        out[bucket].append(pod)
    return out


def _names(pods: Sequence[Pod]) -> list[str]:
    return sorted(objects.name(pod) for pod in pods)


def podset_plan(podset: Mapping[str, Any], pods: Sequence[Pod], now: Any = None) -> dict[str, Any]:
    """What one reconcile of the PodSet does, as data; ReplicaSet semantics.

    The active pods are the owned ones plus the ones to adopt. Below spec.replicas, `create`
    says how many to add; above, `delete` names the surplus, least valuable first (see
    podset_rank_for_deletion). Released, terminal and terminating pods are not counted, so
    they are replaced by new ones. Apply in this order: adopt, release, delete
    `replace_terminal` and `delete` (which may name a pod just adopted), then create.
    A PodSet being deleted plans nothing (the garbage collector removes its pods); its
    counts are still reported.
    """
    moment = objects.now(now)
    return plan_from_classes(podset, podset_classify(pods, podset), moment)


def plan_from_classes(podset: Mapping[str, Any], classes: Mapping[str, list[Pod]],
                      moment: datetime.datetime) -> dict[str, Any]:
    """podset_plan from pods already split by podset_classify, for callers that need both."""
    spec = objects.podset_spec(podset)
    active = [*classes["owned"], *classes["to_adopt"]]
    template = spec.get("template") or {}
    counts = podset_counts(active, spec.get("selector"), int(spec.get("minReadySeconds") or 0), moment,
                           objects.labels(template))
    plan: dict[str, Any] = {"create": 0, "delete": [], "adopt": [], "release": [], "replace_terminal": [],
                            "counts": counts}
    if objects.being_deleted(podset):
        return plan
    replicas = spec.get("replicas")
    desired = 1 if replicas is None else int(replicas)
    surplus = len(active) - desired
    plan["create"] = max(0, -surplus)
    if surplus > 0:
        plan["delete"] = [objects.name(pod) for pod in podset_rank_for_deletion(active, moment)[:surplus]]
    plan["adopt"] = _names(classes["to_adopt"])
    plan["release"] = _names(classes["to_release"])
    plan["replace_terminal"] = _names(classes["terminal"])
    return plan


# --- status --------------------------------------------------------------------------


def podset_status_differs(found: Any, status: Mapping[str, Any] | None = None,
                          conditions: Sequence[Mapping[str, Any]] | None = None) -> bool:
    """Whether operator_sdk.util.k8s_status, given `status` and `conditions`, would change the
    status of `found`: the object as just read (a dict, or a lookup's list of at most one).

    As the module does, the given fields are merged into the current status (a null removes
    one) and conditions are merged by type, lastTransitionTime kept while a condition's status
    stays. A missing object, or anything but plain values to compare, counts as a change: the
    module then runs and decides, so a needed write is never skipped.
    """
    if isinstance(found, Sequence) and not isinstance(found, str | bytes):
        found = found[0] if len(found) == 1 else None
    if not isinstance(found, Mapping):
        return True
    current = found.get("status") or {}
    if not isinstance(current, Mapping):
        return True
    for key, value in (status or {}).items():
        if key == "conditions" or isinstance(value, Mapping):
            return True
        if (key in current) if value is None else current.get(key) != value:
            return True
    if conditions:
        before = current.get("conditions") or []
        return bool(merge_conditions(before, conditions, "") != before)
    return False


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "podset_rank_for_deletion": podset_rank_for_deletion,
            "podset_is_active": podset_is_active,
            "podset_is_ready": podset_is_ready,
            "podset_counts": podset_counts,
            "podset_selector_matches": podset_selector_matches,
            "podset_selector_string": podset_selector_string,
            "podset_status_differs": podset_status_differs,
            "podset_classify": podset_classify,
            "podset_plan": podset_plan,
        }
