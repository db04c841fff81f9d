"""Filters for PodSet rollouts: revisions of the pod template, the bounds of a rolling update,
and the whole decision of one reconcile (podset_rollout), as a Deployment would take it.

A revision is a distinct pod template. Its hash labels the pods made from it
(`pod-template-hash`, as a Deployment's ReplicaSets do) and names a ControllerRevision owned by
the PodSet that keeps the template, so the PodSet can roll back to it and `rollout history`
can list it. Everything here is pure: the same PodSet, pods, revisions and `now` give the same
plan. Documentation for ansible-doc is in the neighbouring <filter name>.yml files.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.workloads.plugins.filter.podset import (
    _being_deleted,
    _controller_uid,
    _labels,
    _meta,
    _name,
    _now,
    _parse_time,
    _ready_since,
    _spec,
    _utc,
    plan_from_classes,
    podset_classify,
    podset_is_ready,
    podset_rank_for_deletion,
)

HASH_LABEL = "pod-template-hash"
# On revision records, so a PodSet's revisions can be listed by label.
PODSET_LABEL = "workloads.playbook-operator.io/podset"
CHANGE_CAUSE = "kubernetes.io/change-cause"

Pod = Mapping[str, Any]
Revision = Mapping[str, Any]


# --- revisions ---------------------------------------------------------------------------


def podset_template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """A short, stable hash of a pod template: the same template always gives the same hash.

    The template is hashed as canonical JSON (keys sorted), with the collision count appended
    when it is not zero, so a collision is escaped by counting up, as a Deployment does.
    """
    if not isinstance(template, Mapping):
        raise AnsibleFilterError(f"a pod template must be an object, not {type(template).__name__}")
    text = _canonical(template)
    if collision_count:
        text += str(int(collision_count))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def podset_revision_selector(podset: Mapping[str, Any]) -> str:
    """The label selector that lists the PodSet's revision records."""
    return f"{PODSET_LABEL}={_meta(podset).get('name') or ''}"


def _revision_number(revision: Revision) -> int:
    try:
        return int(revision.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


def _canonical(template: Any) -> str:
    return json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def podset_revision_template(revision: Revision) -> Any:
    """The pod template a revision record keeps (None when it keeps none we can read)."""
    data = revision.get("data")
    return data.get("template") if isinstance(data, Mapping) else None


def podset_revisions(revisions: Sequence[Revision], podset: Mapping[str, Any]) -> list[Revision]:
    """The revision records (ControllerRevisions) the PodSet controls, oldest revision first."""
    if not isinstance(revisions, Sequence) or isinstance(revisions, str | bytes):
        raise AnsibleFilterError(f"revisions must be a list, not {type(revisions).__name__}")
    uid = str(_meta(podset).get("uid") or "")
    owned = []
    for revision in revisions:
        if not isinstance(revision, Mapping):
            raise AnsibleFilterError(f"revisions must be a list of objects, found {revision!r}")
        refs = _meta(revision).get("ownerReferences") or []
        if uid and any(isinstance(r, Mapping) and r.get("controller") is True and r.get("uid") == uid for r in refs):
            owned.append(revision)
    return sorted(owned, key=lambda r: (_revision_number(r), _name(r)))


# --- does a pod run a template? -----------------------------------------------------------

# Fields that hold a resource quantity, or a map of them: the apiserver writes quantities in
# canonical form (cpu 0.5 comes back as "500m", memory 1024Mi as "1Gi").
_QUANTITY_FIELDS = frozenset({"limits", "requests", "overhead", "sizeLimit"})
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?")
_QUANTITY_SUFFIX = {
    None: Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def _quantity(value: Any) -> Fraction | None:
    """A Kubernetes resource quantity ("500m", "1Gi", 0.5, "1e3") as an exact number; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    scale = Fraction(10) ** int(exponent) if exponent else _QUANTITY_SUFFIX[suffix]
    return Fraction(number) * scale


def _covers(live: Any, wanted: Any, quantity: bool = False) -> bool:
    """Whether `live` has every field `wanted` sets, with the same value.

    What the apiserver, the scheduler and admission add is ignored: fields the template leaves
    unset (defaults, nodeName, serviceAccountName, ...), and items added to a list of objects
    (the ServiceAccount token volume and its mounts, default tolerations, injected containers),
    as long as the template's items are there in the template's order. A field the template
    sets to a zero value ("", 0, false, [], {}) matches one left out, as the apiserver leaves
    them out. Lists of plain values (command, args) must be equal; quantities are compared as
    numbers.
    """
    if live is None and isinstance(wanted, Mapping):
        live = {}
    elif live is None and isinstance(wanted, list):
        live = []
    elif live is None:
        return not wanted
    if isinstance(wanted, Mapping):
        if not isinstance(live, Mapping):
            return False
        for key, value in wanted.items():
            if key not in live:
                if value:  # a zero value is what the apiserver leaves out
                    return False
            elif not _covers(live[key], value, quantity or key in _QUANTITY_FIELDS):
                return False
        return True
    if isinstance(wanted, list):
        if not isinstance(live, list):
            return False
        if not any(isinstance(item, Mapping) for item in wanted):
            return live == wanted
        remaining: Iterator[Any] = iter(live)
        # Each item of the template matched by a live item after the one that matched the item before.
        return all(any(_covers(item, want, quantity) for item in remaining) for want in wanted)
    if quantity:
        have, want = _quantity(live), _quantity(wanted)
        if have is not None and want is not None:
            return have == want
    if isinstance(live, bool) or isinstance(wanted, bool):
        return live is wanted  # 1 and true are not the same value in a pod spec
    return bool(live == wanted)


def podset_runs_template(pod: Pod, template: Mapping[str, Any]) -> bool:
    """Whether a pod already runs a pod template, whatever its `pod-template-hash` label says.

    Every label and annotation the template sets is on the pod with the same value, and every
    field of the template's pod spec is in the pod's spec with the same value; what the
    apiserver, the scheduler and admission add to a pod is ignored (see the ansible-doc).
    """
    if not isinstance(pod, Mapping):
        raise AnsibleFilterError(f"a pod must be an object, not {type(pod).__name__}")
    if not isinstance(template, Mapping):
        raise AnsibleFilterError(f"a pod template must be an object, not {type(template).__name__}")
    meta = template.get("metadata") or {}
    wanted = {
        "metadata": {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}},
        "spec": template.get("spec") or {},
    }
    return _covers({"metadata": _meta(pod), "spec": pod.get("spec") or {}}, wanted)


# --- bounds ------------------------------------------------------------------------------


def _scaled(value: Any, total: int, round_up: bool, what: str) -> int:
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{what} must be a number or a percentage, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise AnsibleFilterError(f"{what} must not be negative, got {value}")
        return value
    text = str(value).strip()
    if text.endswith("%") and text[:-1].isdigit():
        exact = int(text[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    if text.isdigit():
        return int(text)
    raise AnsibleFilterError(f"{what} must be a number or a percentage such as '25%', not {value!r}")


def podset_rolling_bounds(podset: Mapping[str, Any]) -> dict[str, int]:
    """maxSurge and maxUnavailable as pod counts, with a Deployment's rules.

    Percentages are of spec.replicas: maxSurge rounds up, maxUnavailable rounds down; when
    both come to zero, maxUnavailable becomes 1 so the rollout can move. Recreate gives
    surge 0 and unavailable = replicas (everything goes before anything comes).
    """
    spec = _spec(podset)
    replicas = _replicas(spec)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return {"maxSurge": 0, "maxUnavailable": replicas}
    rolling = strategy.get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, True, "maxSurge")
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, False, "maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return {"maxSurge": surge, "maxUnavailable": min(unavailable, replicas)}


def _replicas(spec: Mapping[str, Any]) -> int:
    replicas = spec.get("replicas")
    return 1 if replicas is None else int(replicas)


# --- the rollout -------------------------------------------------------------------------


def _rfc3339(moment: datetime.datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def _pod_hash(pod: Pod) -> str | None:
    value = _labels(pod).get(HASH_LABEL)
    return None if value is None else str(value)


def _seconds_until_available(pods: Sequence[Pod], min_ready_seconds: int, now: datetime.datetime) -> float | None:
    """How long until the first ready-but-not-yet-available pod becomes available."""
    if not min_ready_seconds:
        return None
    waits = []
    for pod in pods:
        since = _ready_since(pod)
        if since is not None and not podset_is_ready(pod, min_ready_seconds, now):
            waits.append((since - now).total_seconds() + min_ready_seconds)
    return max(0.0, min(waits)) if waits else None


def _revision_manifest(
    podset: Mapping[str, Any], name: str, template_hash: str, template: Any, number: int, owner: Mapping[str, Any]
) -> dict[str, Any]:
    meta = _meta(podset)
    annotations = {}
    cause = (meta.get("annotations") or {}).get(CHANGE_CAUSE)
    if cause:
        annotations[CHANGE_CAUSE] = str(cause)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": {PODSET_LABEL: str(meta.get("name")), HASH_LABEL: template_hash},
            "annotations": annotations,
            "ownerReferences": [dict(owner)],
        },
        "data": {"template": template},
        "revision": number,
    }


def podset_rollout(
    podset: Mapping[str, Any],
    pods: Sequence[Pod],
    revisions: Sequence[Revision],
    now: Any = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What one reconcile of the PodSet does, rollouts included, as data.

    The adopt/release/terminal decisions are podset_plan's. On top of them: which revision
    the pods should have (the target), how many pods of it to create and which pods to delete
    within the strategy's bounds, the revision records to create, renumber and prune, the
    whole status with its Progressing and Available conditions, the Events to emit, and when
    to look again (`requeue_after`, seconds, 0 for never). `relabel` names the pods without a
    `pod-template-hash` label that already run the target's template (podset_runs_template):
    they are counted as the target's and get its hash label instead of being replaced. Apply
    in this order: revisions, adopt, release, relabel, create, delete, status, Events, prune.
    """
    spec = _spec(podset)
    meta = _meta(podset)
    status = podset.get("status") or {}
    moment = _now(now)
    name = str(meta.get("name") or "")
    classes = podset_classify(pods, podset)
    base = plan_from_classes(podset, classes, moment)
    owned_revisions = podset_revisions(revisions, podset)
    by_name = {_name(r): r for r in owned_revisions}
    max_number = max((_revision_number(r) for r in owned_revisions), default=0)
    template = spec.get("template") or {}
    collisions = int(status.get("collisionCount") or 0)
    replicas = _replicas(spec)
    min_ready = int(spec.get("minReadySeconds") or 0)
    deadline = int(spec.get("progressDeadlineSeconds") or 600)
    paused = bool(spec.get("paused"))
    rollback_enabled = bool((spec.get("rollback") or {}).get("enabled", True))
    recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
    bounds = podset_rolling_bounds(podset)

    plan: dict[str, Any] = {
        **base,
        "create": 0,
        "delete": [],
        "create_template": {},
        "relabel": [],
        "revisions": {"create": [], "renumber": [], "prune": []},
        "events": [],
        "requeue_after": 0,
        "bounds": bounds,
    }
    owner_ref = dict(owner or {})

    # The template's revision. A record of that name with another template is a hash collision:
    # count it in status and plan nothing else; the next reconcile hashes with the new count.
    spec_hash = podset_template_hash(template, collisions)
    spec_revision = f"{name}-{spec_hash}"
    existing = by_name.get(spec_revision)
    if existing is not None and podset_revision_template(existing) != template:
        plan["status"] = {"collisionCount": collisions + 1}
        plan["conditions"] = []
        plan["requeue_after"] = 1
        plan["target"] = {}
        return plan

    current = str(status.get("currentRevision") or "")
    current = current if current in by_name else ""
    failed = str(status.get("failedRevision") or "")
    previous_update = str(status.get("updateRevision") or "")
    progressing_before = _condition(status, "Progressing")

    # The target: the template's revision, unless it already failed and was rolled back from
    # (then the PodSet stays on the revision it went back to until the template changes again).
    rolled_back = bool(failed) and failed == spec_revision and bool(current) and rollback_enabled
    if failed and not rolled_back:
        failed = ""
    if rolled_back:
        target_name = current
    elif paused and previous_update in by_name:
        # Paused: a template change does not start a rollout; missing pods come from the
        # revision that was being rolled out.
        target_name = previous_update
    else:
        target_name = spec_revision
    target_record = by_name.get(target_name)
    target_template = template if target_name == spec_revision else podset_revision_template(target_record or {})
    target_hash = str(_labels(target_record or {}).get(HASH_LABEL) or target_name.rsplit("-", 1)[-1])

    if target_record is None and target_name == spec_revision and not _being_deleted(podset):
        plan["revisions"]["create"].append(
            _revision_manifest(podset, spec_revision, spec_hash, template, max_number + 1, owner_ref)
        )
    elif (
        target_name == spec_revision
        and target_name != previous_update
        and target_record is not None
        and _revision_number(target_record) < max_number
    ):
        # An old template is back (an undo, or the user's own revert): it becomes the newest
        # revision again, as a Deployment renumbers the ReplicaSet it goes back to.
        plan["revisions"]["renumber"].append({"name": target_name, "revision": max_number + 1})

    # Which of the active pods (owned or adopted now, as podset_plan counts them) are the
    # target's and which are older. A pod without a revision label (an orphan made by hand,
    # a pod made before revisions existed) that already runs the target's template is the
    # target's: it gets the label and stays, as a ReplicaSet keeps the pods it adopts.
    leaving = _being_deleted(podset)
    active = [*classes["owned"], *classes["to_adopt"]]
    running_target = [] if leaving or not isinstance(target_template, Mapping) else [
        p for p in active if _pod_hash(p) is None and podset_runs_template(p, target_template)
    ]
    plan["relabel"] = [{"name": _name(p), "labels": {HASH_LABEL: target_hash}}
                       for p in sorted(running_target, key=_name)]
    relabelled = {_name(p) for p in running_target}
    new = [p for p in active if _pod_hash(p) == target_hash or _name(p) in relabelled]
    old = [p for p in active if _pod_hash(p) != target_hash and _name(p) not in relabelled]
    available = [p for p in active if podset_is_ready(p, min_ready, moment)]
    new_available = [p for p in new if podset_is_ready(p, min_ready, moment)]
    total = len(active)
    min_available = max(0, replicas - bounds["maxUnavailable"])

    complete = len(new) == replicas and len(new_available) == replicas and not old
    settled = not old and (complete or current == target_name)
    create = 0
    delete: list[str] = []
    if not leaving:
        if recreate and not paused:
            if old:
                delete = [_name(p) for p in podset_rank_for_deletion(old, moment)]
            elif all(_pod_hash(p) == target_hash for p in classes["terminating"]):
                create = max(0, replicas - len(new))
        elif paused:
            create = max(0, replicas - total)
        else:
            if len(new) < replicas:
                create = min(replicas - len(new), max(0, replicas + bounds["maxSurge"] - total))
            new_unavailable = len(new) - len(new_available)
            max_scaled_down = total - min_available - new_unavailable
            if old and max_scaled_down > 0:
                ranked_old = podset_rank_for_deletion(old, moment)
                unhealthy = [p for p in ranked_old if not podset_is_ready(p, min_ready, moment)]
                cleanup = unhealthy[:max_scaled_down]
                can_go = min(max_scaled_down - len(cleanup), len(available) - min_available)
                healthy = [p for p in ranked_old if podset_is_ready(p, min_ready, moment)]
                delete = [_name(p) for p in cleanup] + [_name(p) for p in healthy[: max(0, can_go)]]
        if len(new) > replicas:
            delete += [_name(p) for p in podset_rank_for_deletion(new, moment)[: len(new) - replicas]]
    plan["create"] = create
    plan["delete"] = delete
    plan["create_template"] = _pod_template(target_template, target_hash)

    # Progress, the deadline and the rollback.
    counts = base["counts"]
    updated = len(new)
    progressed = (
        target_name != previous_update
        or updated > int(status.get("updatedReplicas") or 0)
        or counts["readyReplicas"] > int(status.get("readyReplicas") or 0)
        or counts["availableReplicas"] > int(status.get("availableReplicas") or 0)
        or len(old) < int(status.get("replicas") or 0) - int(status.get("updatedReplicas") or 0)
    )
    last_progress = _parse_time(progressing_before.get("lastHeartbeatTime"), "lastHeartbeatTime")
    since_progress = (moment - last_progress).total_seconds() if last_progress else 0.0
    progressing: dict[str, Any]
    if rolled_back:
        progressing = _rolled_back_condition(failed, current, by_name, deadline, progressing_before)
    elif paused:
        progressing = {
            "type": "Progressing",
            "status": "Unknown",
            "reason": "DeploymentPaused",
            "message": "PodSet is paused; template changes are not rolled out",
        }
    elif settled:
        # Done, or a rollout done earlier and now only scaling or replacing pods: no deadline.
        progressing = {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable",
            "message": f'PodSet "{name}" has successfully progressed to revision {target_name}.',
        }
        if progressing_before.get("reason") == "NewReplicaSetAvailable" and progressing_before.get("lastHeartbeatTime"):
            progressing["lastHeartbeatTime"] = progressing_before["lastHeartbeatTime"]
        else:
            progressing["lastHeartbeatTime"] = _rfc3339(moment)
    elif (
        not progressed
        and last_progress is not None
        and since_progress > deadline
        and progressing_before.get("reason") in ("NewReplicaSetCreated", "ReplicaSetUpdated")
    ):
        if rollback_enabled and current and current != target_name:
            failed = target_name
            progressing = _rolled_back_condition(failed, current, by_name, deadline, progressing_before)
            progressing["lastHeartbeatTime"] = _rfc3339(moment)
            plan["events"].append(
                {
                    "reason": "RolledBack",
                    "type": "Warning",
                    "suffix": f"rolledback.{target_hash}",
                    "message": (
                        f"Rolled back from revision {_number_of(by_name, target_name)} ({target_name}) "
                        f"to revision {_number_of(by_name, current)} ({current}): its pods were not "
                        f"available within progressDeadlineSeconds ({deadline}s)"
                    ),
                }
            )
            # Go back now rather than on the next reconcile.
            return _retarget(podset, pods, revisions, moment, owner, failed, plan)
        progressing = {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": f'PodSet "{name}" revision {target_name} has timed out progressing.',
            "lastHeartbeatTime": progressing_before.get("lastHeartbeatTime"),
        }
        plan["events"].append(
            {
                "reason": "ProgressDeadlineExceeded",
                "type": "Warning",
                "suffix": f"deadline.{target_hash}",
                "message": (
                    f"Revision {target_name} made no progress for {deadline}s"
                    + ("" if rollback_enabled else "; rollback is disabled, so the rollout goes on")
                    + ("" if current else "; there is no healthy revision to go back to")
                ),
            }
        )
    elif (
        progressing_before.get("reason") == "ProgressDeadlineExceeded"
        and not progressed
        and target_name == previous_update
    ):
        progressing = dict(progressing_before)
    else:
        reason = "NewReplicaSetCreated" if target_name != previous_update else "ReplicaSetUpdated"
        progressing = {
            "type": "Progressing",
            "status": "True",
            "reason": reason,
            "message": f'PodSet "{name}" is progressing to revision {target_name}.',
            "lastHeartbeatTime": _rfc3339(moment)
            if progressed or last_progress is None
            else progressing_before.get("lastHeartbeatTime"),
        }
        if progressing_before.get("reason") == reason and not progressed:
            progressing["lastHeartbeatTime"] = progressing_before.get("lastHeartbeatTime")
        remaining = deadline - (0.0 if progressed else since_progress)
        plan["requeue_after"] = _soonest(plan["requeue_after"], remaining + 1)

    available_condition = (
        {
            "type": "Available",
            "status": "True",
            "reason": "MinimumReplicasAvailable",
            "message": "PodSet has minimum availability.",
        }
        if counts["availableReplicas"] >= min_available
        else {
            "type": "Available",
            "status": "False",
            "reason": "MinimumReplicasUnavailable",
            "message": "PodSet does not have minimum availability.",
        }
    )
    wait = _seconds_until_available(active, min_ready, moment)
    if wait is not None:
        plan["requeue_after"] = _soonest(plan["requeue_after"], wait + 1)

    new_current = target_name if complete else current
    plan["status"] = {
        "updatedReplicas": updated,
        "currentRevision": new_current or None,
        "updateRevision": target_name,
        "failedRevision": failed or None,
    }
    plan["conditions"] = [progressing, available_condition]
    plan["target"] = {"name": target_name, "hash": target_hash}
    plan["revisions"]["prune"] = _prune(
        owned_revisions, {target_name, new_current, failed}, pods, podset, int(spec.get("revisionHistoryLimit", 10))
    )
    return _finish(plan)


def _finish(plan: dict[str, Any]) -> dict[str, Any]:
    plan["requeue_after"] = math.ceil(plan["requeue_after"]) if plan["requeue_after"] else 0
    return plan


def _retarget(
    podset: Mapping[str, Any],
    pods: Sequence[Pod],
    revisions: Sequence[Revision],
    moment: datetime.datetime,
    owner: Mapping[str, Any] | None,
    failed: str,
    first: dict[str, Any],
) -> dict[str, Any]:
    """The plan once the update revision failed: as if status already named it failed."""
    status = dict(podset.get("status") or {})
    status["failedRevision"] = failed
    again = podset_rollout({**podset, "status": status}, pods, revisions, moment, owner)
    again["events"] = first["events"] + again["events"]
    return again


def _rolled_back_condition(
    failed: str, current: str, by_name: Mapping[str, Revision], deadline: int, before: Mapping[str, Any]
) -> dict[str, Any]:
    condition = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": (
            f"Revision {_number_of(by_name, failed)} ({failed}) was not available within "
            f"{deadline}s; rolled back to revision {_number_of(by_name, current)} ({current}) "
            "until the template changes"
        ),
    }
    if before.get("reason") == "ProgressDeadlineExceeded" and before.get("lastHeartbeatTime"):
        condition["lastHeartbeatTime"] = before["lastHeartbeatTime"]
    return condition


def _number_of(by_name: Mapping[str, Revision], name: str) -> int | str:
    record = by_name.get(name)
    return _revision_number(record) if record is not None else "?"


def _soonest(current: float, candidate: float) -> float:
    candidate = max(1.0, candidate)
    return candidate if not current else min(current, candidate)


def _pod_template(template: Any, template_hash: str) -> dict[str, Any]:
    template = template if isinstance(template, Mapping) else {}
    meta = template.get("metadata") or {}
    return {
        "labels": {**(meta.get("labels") or {}), HASH_LABEL: template_hash},
        "annotations": dict(meta.get("annotations") or {}),
        "spec": template.get("spec") or {},
    }


def _prune(
    revisions: Sequence[Revision], keep: set[str], pods: Sequence[Pod], podset: Mapping[str, Any], limit: int
) -> list[str]:
    """Old revisions beyond revisionHistoryLimit, oldest first; never one with pods."""
    uid = str(_meta(podset).get("uid") or "")
    in_use = {_pod_hash(p) for p in pods if uid and _controller_uid(p) == uid}
    candidates = [r for r in revisions if _name(r) not in keep and str(_labels(r).get(HASH_LABEL)) not in in_use]
    surplus = len(candidates) - max(0, limit)
    return [_name(r) for r in candidates[:surplus]] if surplus > 0 else []


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "podset_template_hash": podset_template_hash,
            "podset_revisions": podset_revisions,
            "podset_revision_selector": podset_revision_selector,
            "podset_revision_template": podset_revision_template,
            "podset_rolling_bounds": podset_rolling_bounds,
            "podset_rollout": podset_rollout,
            "podset_runs_template": podset_runs_template,
        }
