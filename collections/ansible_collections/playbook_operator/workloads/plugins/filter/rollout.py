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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.workloads.plugins.filter.podset import (
    plan_from_classes,
    podset_classify,
    podset_is_ready,
    podset_rank_for_deletion,
)
from ansible_collections.playbook_operator.workloads.plugins.module_utils import objects

HASH_LABEL = "pod-template-hash"
# On revision records and on the pods a PodSet creates or adopts, so what it made can be listed by label.
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


def podset_owned_selector(podset: Mapping[str, Any]) -> str:
    """The label selector that lists what the PodSet made: its revision records, and the pods it
    created or adopted. With the PodSet's own selector, it finds an owned pod whose labels no
    longer match, to release it, without reading every pod of the namespace."""
    return f"{PODSET_LABEL}={objects.meta(podset).get('name') or ''}"


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
    uid = str(objects.meta(podset).get("uid") or "")
    owned = []
    for revision in revisions:
        if not isinstance(revision, Mapping):
            raise AnsibleFilterError(f"revisions must be a list of objects, found {revision!r}")
        refs = objects.meta(revision).get("ownerReferences") or []
        if uid and any(isinstance(r, Mapping) and r.get("controller") is True and r.get("uid") == uid for r in refs):
            owned.append(revision)
    return sorted(owned, key=lambda r: (_revision_number(r), objects.name(r)))


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
    return _covers({"metadata": objects.meta(pod), "spec": pod.get("spec") or {}}, wanted)


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
    spec = objects.podset_spec(podset)
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
    return objects.utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def _pod_hash(pod: Pod) -> str | None:
    value = objects.labels(pod).get(HASH_LABEL)
    return None if value is None else str(value)


def _seconds_until_available(pods: Sequence[Pod], min_ready_seconds: int, now: datetime.datetime) -> float | None:
    """How long until the first ready-but-not-yet-available pod becomes available."""
    if not min_ready_seconds:
        return None
    waits = []
    for pod in pods:
        since = objects.ready_since(pod)
        if since is not None and not podset_is_ready(pod, min_ready_seconds, now):
            waits.append((since - now).total_seconds() + min_ready_seconds)
    return max(0.0, min(waits)) if waits else None


def _revision_manifest(
    podset: Mapping[str, Any], name: str, template_hash: str, template: Any, number: int, owner: Mapping[str, Any]
) -> dict[str, Any]:
    meta = objects.meta(podset)
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
    they are counted as the target's and get its hash label instead of being replaced.
    `label_owned` names the owned pods without the PodSet's own label (PODSET_LABEL), which they
    get. Apply in this order: revisions, adopt, release, relabel and label, create, delete,
    prune, status, Events.

    `requests` is all of that as kubernetes.core.k8s definitions, a list per kind of request
    and in that order (see _requests), and `summary` says what each request does, a line each.
    """
    facts = _read(podset, pods, revisions, now)
    plan = _empty_plan(facts)
    owner_ref = dict(owner or {})
    spec_hash = podset_template_hash(facts.template, facts.collisions)
    if _hash_collides(facts, spec_hash):
        return _with_requests(_count_the_collision(plan, facts), facts, owner_ref)
    target = _choose_target(facts, spec_hash)
    plan["revisions"].update(_record_the_target(facts, target, owner_ref))
    split = _split_pods(facts, target)
    plan["relabel"] = _relabel(split, target)
    plan["label_owned"] = _without_owned_label(facts)
    plan["create"], plan["delete"] = _scale(facts, target, split)
    plan["create_template"] = _pod_template(target.template, target.hash)
    progressing, missed = _progress(facts, target, split, plan)
    if missed:
        # Go back now rather than on the next reconcile.
        return _retarget(podset, pods, revisions, facts.moment, owner, missed, plan)
    available = _available_condition(facts, split)
    _look_again_when_available(facts, split, plan)
    new_current = target.name if split.complete else target.current
    plan["status"] = _rollout_status(target, split, new_current)
    plan["conditions"] = [progressing, available]
    plan["target"] = {"name": target.name, "hash": target.hash}
    plan["revisions"]["prune"] = _prune(
        facts.revisions, {target.name, new_current, target.failed}, pods, podset,
        int(facts.spec.get("revisionHistoryLimit", 10)),
    )
    return _finish(_with_requests(plan, facts, owner_ref))


# --- the rollout, step by step -------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What a reconcile reads off the PodSet, its pods and its revision records."""

    podset: Mapping[str, Any]
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    moment: datetime.datetime
    name: str
    classes: dict[str, list[Pod]]
    base: dict[str, Any]  # podset_plan's answer
    revisions: list[Revision]  # the PodSet's own, oldest first
    by_name: dict[str, Revision]
    max_number: int
    template: Any
    collisions: int
    replicas: int
    min_ready: int
    deadline: int
    paused: bool
    rollback_enabled: bool
    recreate: bool
    bounds: dict[str, int]


@dataclass(frozen=True)
class _Target:
    """The revision the pods should have, and what the status said about revisions before."""

    spec_revision: str  # the revision of the template in spec
    spec_hash: str
    current: str  # the last revision fully rolled out, if it still exists
    failed: str  # the revision rolled back from, while the template is still that one
    previous_update: str
    before: Mapping[str, Any]  # the Progressing condition as read
    rolled_back: bool
    name: str
    record: Revision | None
    template: Any
    hash: str


@dataclass(frozen=True)
class _Split:
    """The active pods (owned or adopted now), split into the target's and older ones."""

    active: list[Pod]
    running_target: list[Pod]  # without a revision label, but running the target's template
    new: list[Pod]
    old: list[Pod]
    available: list[Pod]
    new_available: list[Pod]
    min_available: int
    complete: bool  # every replica is the target's and available, no old pod left
    settled: bool  # no old pod left, and the rollout done now or earlier


def _read(podset: Mapping[str, Any], pods: Sequence[Pod], revisions: Sequence[Revision], now: Any) -> _Facts:
    spec = objects.podset_spec(podset)
    meta = objects.meta(podset)
    status = podset.get("status") or {}
    moment = objects.now(now)
    name = str(meta.get("name") or "")
    classes = podset_classify(pods, podset)
    base = plan_from_classes(podset, classes, moment)
    owned_revisions = podset_revisions(revisions, podset)
    return _Facts(
        podset=podset,
        spec=spec,
        status=status,
        moment=moment,
        name=name,
        classes=classes,
        base=base,
        revisions=owned_revisions,
        by_name={objects.name(r): r for r in owned_revisions},
        max_number=max((_revision_number(r) for r in owned_revisions), default=0),
        template=spec.get("template") or {},
        collisions=int(status.get("collisionCount") or 0),
        replicas=_replicas(spec),
        min_ready=int(spec.get("minReadySeconds") or 0),
        deadline=int(spec.get("progressDeadlineSeconds") or 600),
        paused=bool(spec.get("paused")),
        rollback_enabled=bool((spec.get("rollback") or {}).get("enabled", True)),
        recreate=(spec.get("strategy") or {}).get("type") == "Recreate",
        bounds=podset_rolling_bounds(podset),
    )


def _empty_plan(facts: _Facts) -> dict[str, Any]:
    return {
        **facts.base,
        "create": 0,
        "delete": [],
        "create_template": {},
        "relabel": [],
        "label_owned": [],
        "revisions": {"create": [], "renumber": [], "prune": []},
        "requests": {"apply": [], "patch": [], "create": [], "delete": []},
        "summary": [],
        "events": [],
        "requeue_after": 0,
        "bounds": facts.bounds,
    }


def _hash_collides(facts: _Facts, spec_hash: str) -> bool:
    """A record named for the template's hash keeps another template."""
    existing = facts.by_name.get(f"{facts.name}-{spec_hash}")
    return existing is not None and podset_revision_template(existing) != facts.template


def _count_the_collision(plan: dict[str, Any], facts: _Facts) -> dict[str, Any]:
    """Count a hash collision in status and plan nothing else; the next reconcile hashes with
    the new count."""
    plan["status"] = {"collisionCount": facts.collisions + 1}
    plan["conditions"] = []
    plan["requeue_after"] = 1
    plan["target"] = {}
    return plan


def _choose_target(facts: _Facts, spec_hash: str) -> _Target:
    """The template's revision, unless it already failed and was rolled back from (then the
    PodSet stays on the revision it went back to until the template changes again), or the
    PodSet is paused (then missing pods come from the revision that was being rolled out)."""
    status, by_name = facts.status, facts.by_name
    spec_revision = f"{facts.name}-{spec_hash}"
    current = str(status.get("currentRevision") or "")
    current = current if current in by_name else ""
    failed = str(status.get("failedRevision") or "")
    previous_update = str(status.get("updateRevision") or "")
    before = _condition(status, "Progressing")
    rolled_back = bool(failed) and failed == spec_revision and bool(current) and facts.rollback_enabled
    if failed and not rolled_back:
        failed = ""
    if rolled_back:
        name = current
    elif facts.paused and previous_update in by_name:
        name = previous_update
    else:
        name = spec_revision
    record = by_name.get(name)
    return _Target(
        spec_revision=spec_revision,
        spec_hash=spec_hash,
        current=current,
        failed=failed,
        previous_update=previous_update,
        before=before,
        rolled_back=rolled_back,
        name=name,
        record=record,
        template=facts.template if name == spec_revision else podset_revision_template(record or {}),
        hash=str(objects.labels(record or {}).get(HASH_LABEL) or name.rsplit("-", 1)[-1]),
    )


def _record_the_target(facts: _Facts, target: _Target, owner_ref: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A record for a new template; an old template that is back (an undo, or the user's own
    revert) becomes the newest revision again, as a Deployment renumbers the ReplicaSet it goes
    back to."""
    if target.record is None and target.name == target.spec_revision and not objects.being_deleted(facts.podset):
        manifest = _revision_manifest(facts.podset, target.spec_revision, target.spec_hash, facts.template,
                                      facts.max_number + 1, owner_ref)
        return {"create": [manifest]}
    if (
        target.name == target.spec_revision
        and target.name != target.previous_update
        and target.record is not None
        and _revision_number(target.record) < facts.max_number
    ):
        return {"renumber": [{"name": target.name, "revision": facts.max_number + 1}]}
    return {}


def _split_pods(facts: _Facts, target: _Target) -> _Split:
    """Which of the active pods (owned or adopted now, as podset_plan counts them) are the
    target's and which are older. A pod without a revision label (an orphan made by hand, a pod
    made before revisions existed) that already runs the target's template is the target's: it
    gets the label and stays, as a ReplicaSet keeps the pods it adopts."""
    moment, min_ready, replicas = facts.moment, facts.min_ready, facts.replicas
    active = [*facts.classes["owned"], *facts.classes["to_adopt"]]
    running_target = [] if objects.being_deleted(facts.podset) or not isinstance(target.template, Mapping) else [
        p for p in active if _pod_hash(p) is None and podset_runs_template(p, target.template)
    ]
    relabelled = {objects.name(p) for p in running_target}
    new = [p for p in active if _pod_hash(p) == target.hash or objects.name(p) in relabelled]
    old = [p for p in active if _pod_hash(p) != target.hash and objects.name(p) not in relabelled]
    available = [p for p in active if podset_is_ready(p, min_ready, moment)]
    new_available = [p for p in new if podset_is_ready(p, min_ready, moment)]
    complete = len(new) == replicas and len(new_available) == replicas and not old
    return _Split(
        active=active,
        running_target=running_target,
        new=new,
        old=old,
        available=available,
        new_available=new_available,
        min_available=max(0, replicas - facts.bounds["maxUnavailable"]),
        complete=complete,
        settled=not old and (complete or target.current == target.name),
    )


def _relabel(split: _Split, target: _Target) -> list[dict[str, Any]]:
    return [{"name": objects.name(p), "labels": {HASH_LABEL: target.hash}}
            for p in sorted(split.running_target, key=objects.name)]


def _without_owned_label(facts: _Facts) -> list[str]:
    """Owned pods made before pods carried PODSET_LABEL: they get it, so that podset_owned_selector
    finds them once their labels stop matching."""
    if objects.being_deleted(facts.podset):
        return []
    return sorted(objects.name(p) for p in facts.classes["owned"] if PODSET_LABEL not in objects.labels(p))


def _scale(facts: _Facts, target: _Target, split: _Split) -> tuple[int, list[str]]:
    """How many pods of the target to create and which pods to delete, within the strategy's
    bounds; nothing while the PodSet is being deleted."""
    if objects.being_deleted(facts.podset):
        return 0, []
    if facts.recreate and not facts.paused:
        create, delete = _recreate(facts, target, split)
    elif facts.paused:
        create, delete = max(0, facts.replicas - len(split.active)), []
    else:
        create, delete = _roll(facts, split)
    if len(split.new) > facts.replicas:
        surplus = len(split.new) - facts.replicas
        delete += [objects.name(p) for p in podset_rank_for_deletion(split.new, facts.moment)[:surplus]]
    return create, delete


def _recreate(facts: _Facts, target: _Target, split: _Split) -> tuple[int, list[str]]:
    """Every old pod goes, and only once none is left (nor still terminating) do new ones come."""
    if split.old:
        return 0, [objects.name(p) for p in podset_rank_for_deletion(split.old, facts.moment)]
    if all(_pod_hash(p) == target.hash for p in facts.classes["terminating"]):
        return max(0, facts.replicas - len(split.new)), []
    return 0, []


def _roll(facts: _Facts, split: _Split) -> tuple[int, list[str]]:
    """A rolling update step: new pods up to maxSurge above spec.replicas, then old pods down to
    maxUnavailable below it, unhealthy ones first."""
    moment, min_ready, replicas, bounds = facts.moment, facts.min_ready, facts.replicas, facts.bounds
    total = len(split.active)
    create = 0
    delete: list[str] = []
    if len(split.new) < replicas:
        create = min(replicas - len(split.new), max(0, replicas + bounds["maxSurge"] - total))
    new_unavailable = len(split.new) - len(split.new_available)
    max_scaled_down = total - split.min_available - new_unavailable
    if split.old and max_scaled_down > 0:
        ranked_old = podset_rank_for_deletion(split.old, moment)
        unhealthy = [p for p in ranked_old if not podset_is_ready(p, min_ready, moment)]
        cleanup = unhealthy[:max_scaled_down]
        can_go = min(max_scaled_down - len(cleanup), len(split.available) - split.min_available)
        healthy = [p for p in ranked_old if podset_is_ready(p, min_ready, moment)]
        delete = [objects.name(p) for p in cleanup] + [objects.name(p) for p in healthy[: max(0, can_go)]]
    return create, delete


def _progress(facts: _Facts, target: _Target, split: _Split, plan: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The Progressing condition: progress, the deadline and the rollback. Events and when to
    look again go into `plan`. The second value names the revision that has just missed its
    deadline when the PodSet must go back from it now ("" otherwise)."""
    before = target.before
    progressed = _progressed(facts, target, split)
    last_progress = objects.parse_time(before.get("lastHeartbeatTime"), "lastHeartbeatTime")
    since_progress = (facts.moment - last_progress).total_seconds() if last_progress else 0.0
    if target.rolled_back:
        return _rolled_back_condition(target.failed, target.current, facts.by_name, facts.deadline, before), ""
    if facts.paused:
        return _paused_condition(), ""
    if split.settled:
        return _complete_condition(facts, target), ""
    if (
        not progressed
        and last_progress is not None
        and since_progress > facts.deadline
        and before.get("reason") in ("NewReplicaSetCreated", "ReplicaSetUpdated")
    ):
        if facts.rollback_enabled and target.current and target.current != target.name:
            plan["events"].append(_rolled_back_event(facts, target))
            return {}, target.name
        plan["events"].append(_deadline_event(facts, target))
        return _timed_out_condition(facts, target), ""
    if before.get("reason") == "ProgressDeadlineExceeded" and not progressed and target.name == target.previous_update:
        return dict(before), ""
    progressing = _progressing_condition(facts, target, progressed, last_progress)
    remaining = facts.deadline - (0.0 if progressed else since_progress)
    plan["requeue_after"] = _soonest(plan["requeue_after"], remaining + 1)
    return progressing, ""


def _progressed(facts: _Facts, target: _Target, split: _Split) -> bool:
    """Whether anything moved since the status was written: a new target, more updated, ready
    or available pods, fewer old ones."""
    status, counts = facts.status, facts.base["counts"]
    return (
        target.name != target.previous_update
        or len(split.new) > int(status.get("updatedReplicas") or 0)
        or counts["readyReplicas"] > int(status.get("readyReplicas") or 0)
        or counts["availableReplicas"] > int(status.get("availableReplicas") or 0)
        or len(split.old) < int(status.get("replicas") or 0) - int(status.get("updatedReplicas") or 0)
    )


def _paused_condition() -> dict[str, Any]:
    return {
        "type": "Progressing",
        "status": "Unknown",
        "reason": "DeploymentPaused",
        "message": "PodSet is paused; template changes are not rolled out",
    }


def _complete_condition(facts: _Facts, target: _Target) -> dict[str, Any]:
    """Done, or a rollout done earlier and now only scaling or replacing pods: no deadline."""
    before = target.before
    progressing: dict[str, Any] = {
        "type": "Progressing",
        "status": "True",
        "reason": "NewReplicaSetAvailable",
        "message": f'PodSet "{facts.name}" has successfully progressed to revision {target.name}.',
    }
    if before.get("reason") == "NewReplicaSetAvailable" and before.get("lastHeartbeatTime"):
        progressing["lastHeartbeatTime"] = before["lastHeartbeatTime"]
    else:
        progressing["lastHeartbeatTime"] = _rfc3339(facts.moment)
    return progressing


def _rolled_back_event(facts: _Facts, target: _Target) -> dict[str, Any]:
    return {
        "reason": "RolledBack",
        "type": "Warning",
        "suffix": f"rolledback.{target.hash}",
        "message": (
            f"Rolled back from revision {_number_of(facts.by_name, target.name)} ({target.name}) "
            f"to revision {_number_of(facts.by_name, target.current)} ({target.current}): its pods were not "
            f"available within progressDeadlineSeconds ({facts.deadline}s)"
        ),
    }


def _timed_out_condition(facts: _Facts, target: _Target) -> dict[str, Any]:
    return {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": f'PodSet "{facts.name}" revision {target.name} has timed out progressing.',
        "lastHeartbeatTime": target.before.get("lastHeartbeatTime"),
    }


def _deadline_event(facts: _Facts, target: _Target) -> dict[str, Any]:
    return {
        "reason": "ProgressDeadlineExceeded",
        "type": "Warning",
        "suffix": f"deadline.{target.hash}",
        "message": (
            f"Revision {target.name} made no progress for {facts.deadline}s"
            + ("" if facts.rollback_enabled else "; rollback is disabled, so the rollout goes on")
            + ("" if target.current else "; there is no healthy revision to go back to")
        ),
    }


def _progressing_condition(
    facts: _Facts, target: _Target, progressed: bool, last_progress: datetime.datetime | None
) -> dict[str, Any]:
    """On its way: the heartbeat moves only with progress."""
    before = target.before
    reason = "NewReplicaSetCreated" if target.name != target.previous_update else "ReplicaSetUpdated"
    progressing = {
        "type": "Progressing",
        "status": "True",
        "reason": reason,
        "message": f'PodSet "{facts.name}" is progressing to revision {target.name}.',
        "lastHeartbeatTime": _rfc3339(facts.moment)
        if progressed or last_progress is None
        else before.get("lastHeartbeatTime"),
    }
    if before.get("reason") == reason and not progressed:
        progressing["lastHeartbeatTime"] = before.get("lastHeartbeatTime")
    return progressing


def _available_condition(facts: _Facts, split: _Split) -> dict[str, Any]:
    if facts.base["counts"]["availableReplicas"] >= split.min_available:
        return {
            "type": "Available",
            "status": "True",
            "reason": "MinimumReplicasAvailable",
            "message": "PodSet has minimum availability.",
        }
    return {
        "type": "Available",
        "status": "False",
        "reason": "MinimumReplicasUnavailable",
        "message": "PodSet does not have minimum availability.",
    }


def _look_again_when_available(facts: _Facts, split: _Split, plan: dict[str, Any]) -> None:
    wait = _seconds_until_available(split.active, facts.min_ready, facts.moment)
    if wait is not None:
        plan["requeue_after"] = _soonest(plan["requeue_after"], wait + 1)


def _rollout_status(target: _Target, split: _Split, new_current: str) -> dict[str, Any]:
    return {
        "updatedReplicas": len(split.new),
        "currentRevision": new_current or None,
        "updateRevision": target.name,
        "failedRevision": target.failed or None,
    }


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


# --- the plan as requests ------------------------------------------------------------------


def _with_requests(plan: dict[str, Any], facts: _Facts, owner: Mapping[str, Any]) -> dict[str, Any]:
    plan["requests"] = _requests(plan, facts, owner)
    plan["summary"] = _summary(plan["requests"], plan)
    return plan


def _requests(plan: Mapping[str, Any], facts: _Facts, owner: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The plan as kubernetes.core.k8s definitions, a list for each task that sends them, in the
    order the role sends them: `apply`, new revision records (server-side apply); `patch`, a
    revision that is back the newest one, then one patch per pod that is adopted, released or
    labelled with the target's revision; `create`, the missing pods, each named by the apiserver
    from the PodSet's name; `delete`, ended pods, then surplus and replaced ones least valuable
    first, then revisions beyond the history limit."""
    namespace = objects.meta(facts.podset).get("namespace")
    patch = [_object("apps/v1", "ControllerRevision", change["name"], namespace, revision=change["revision"])
             for change in plan["revisions"]["renumber"]]
    patch += _pod_patches(plan, namespace, owner, str(objects.meta(facts.podset).get("uid") or ""), facts.name)
    delete = [_object("v1", "Pod", name, namespace) for name in [*plan["replace_terminal"], *plan["delete"]]]
    delete += [_object("apps/v1", "ControllerRevision", name, namespace) for name in plan["revisions"]["prune"]]
    return {
        "apply": list(plan["revisions"]["create"]),
        "patch": patch,
        "create": [_new_pod(plan["create_template"], facts.name, namespace, owner) for _ in range(plan["create"])],
        "delete": delete,
    }


def _object(api_version: str, kind: str, name: str, namespace: str | None, **fields: Any) -> dict[str, Any]:
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


def _pod_patches(plan: Mapping[str, Any], namespace: str | None, owner: Mapping[str, Any],
                 uid: str, podset_name: str) -> list[dict[str, Any]]:
    """One strategic merge patch per pod: adopted (the PodSet becomes its controller and its
    PODSET_LABEL is added), released (the PodSet's reference and its PODSET_LABEL removed, by uid
    and by a null), labelled (a pod adopted and labelled at once gets both in one patch)."""
    pods: dict[str, dict[str, Any]] = {}

    def patch(name: str) -> dict[str, Any]:
        metadata: dict[str, Any] = pods.setdefault(name, _object("v1", "Pod", name, namespace))["metadata"]
        return metadata

    for name in plan["adopt"]:
        patch(name)["ownerReferences"] = [dict(owner)]
        patch(name).setdefault("labels", {})[PODSET_LABEL] = podset_name
    for name in plan["release"]:
        patch(name)["ownerReferences"] = [{"uid": uid, "$patch": "delete"}]
        patch(name).setdefault("labels", {})[PODSET_LABEL] = None
    for name in plan["label_owned"]:
        patch(name).setdefault("labels", {})[PODSET_LABEL] = podset_name
    for change in plan["relabel"]:
        patch(change["name"]).setdefault("labels", {}).update(change["labels"])
    return [pods[name] for name in sorted(pods)]


def _new_pod(template: Mapping[str, Any], podset_name: str, namespace: str | None,
             owner: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "generateName": f"{podset_name}-",
        "labels": {**(template.get("labels") or {}), PODSET_LABEL: podset_name},
        "annotations": dict(template.get("annotations") or {}),
        "ownerReferences": [dict(owner)],
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    # The spec is shared, not copied: the module gets the definitions as JSON, and a deep copy of
    # what Ansible hands a filter (lazily templated containers) costs far more than the request.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template.get("spec") or {}}


def _summary(requests: Mapping[str, list[dict[str, Any]]], plan: Mapping[str, Any]) -> list[str]:
    """A line per request, in the order they are made: what a dry run would change."""
    lines = [f"apply ControllerRevision {objects.name(r)}: revision {r.get('revision')}" for r in requests["apply"]]
    for obj in requests["patch"]:
        lines.append(f"patch {obj['kind']} {objects.name(obj)}: {', '.join(_patch_words(obj))}")
    total = len(requests["create"])
    for number, pod in enumerate(requests["create"], 1):
        lines.append(f"create Pod {objects.meta(pod).get('generateName')}* ({number} of {total}), "
                     f"revision {plan['target'].get('name')}")
    lines += [f"delete {obj['kind']} {objects.name(obj)}" for obj in requests["delete"]]
    return lines


def _patch_words(obj: Mapping[str, Any]) -> list[str]:
    if "revision" in obj:
        return [f"revision {obj['revision']}"]
    words = []
    for ref in objects.meta(obj).get("ownerReferences") or []:
        words.append("release" if ref.get("$patch") == "delete" else "adopt")
    words += [f"label {key}={value}" if value is not None else f"unlabel {key}"
              for key, value in sorted(objects.labels(obj).items())]
    return words


def _prune(
    revisions: Sequence[Revision], keep: set[str], pods: Sequence[Pod], podset: Mapping[str, Any], limit: int
) -> list[str]:
    """Old revisions beyond revisionHistoryLimit, oldest first; never one with pods."""
    uid = str(objects.meta(podset).get("uid") or "")
    in_use = {_pod_hash(p) for p in pods if uid and objects.controller_uid(p) == uid}
    candidates = [r for r in revisions
                  if objects.name(r) not in keep and str(objects.labels(r).get(HASH_LABEL)) not in in_use]
    surplus = len(candidates) - max(0, limit)
    return [objects.name(r) for r in candidates[:surplus]] if surplus > 0 else []


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "podset_template_hash": podset_template_hash,
            "podset_revisions": podset_revisions,
            "podset_owned_selector": podset_owned_selector,
            "podset_revision_template": podset_revision_template,
            "podset_rolling_bounds": podset_rolling_bounds,
            "podset_rollout": podset_rollout,
            "podset_runs_template": podset_runs_template,
        }
