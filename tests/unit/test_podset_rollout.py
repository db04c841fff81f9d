"""The PodSet rollout filters without a cluster: template hashes, rolling bounds with a
Deployment's rounding, and podset_rollout driven step by step against a simulated namespace
(pods that become ready or never do, a clock), checking the bounds after every step, the
rollback on a missed deadline, pause, Recreate, revision numbering and pruning, and pods
without a revision label that are kept when they already run the template."""

from __future__ import annotations

import copy
import datetime
import itertools
import sys
from typing import Any

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "collections"))

from ansible.errors import AnsibleFilterError
from ansible_collections.operator_sdk.util.plugins.module_utils.status import desired_status
from ansible_collections.playbook_operator.workloads.plugins.filter import rollout as r
from ansible_collections.playbook_operator.workloads.plugins.filter.podset import podset_selector_matches

START = datetime.datetime(2024, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
UID = "3c1a9a5e-0000-4000-8000-000000000001"
NS = "apps"
OWNER = {"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet", "name": "web", "uid": UID,
         "controller": True, "blockOwnerDeletion": True}


def stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def template(image: str = "web:1", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {"app": "web"}}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"containers": [{"name": "web", "image": image}]}}


def make_podset(replicas: int = 3, *, strategy: dict[str, Any] | None = None, deadline: int = 600,
                history: int = 10, paused: bool = False, rollback: bool = True, min_ready: int = 0,
                image: str = "web:1") -> dict[str, Any]:
    return {
        "apiVersion": "workloads.playbook-operator.io/v1alpha1",
        "kind": "PodSet",
        "metadata": {"name": "web", "namespace": NS, "uid": UID, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(image),
            "strategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                                 "maxUnavailable": "25%"}},
            "progressDeadlineSeconds": deadline,
            "revisionHistoryLimit": history,
            "paused": paused,
            "rollback": {"enabled": rollback},
            "minReadySeconds": min_ready,
        },
    }


class Namespace:
    """Pods, revision records and a PodSet's status, changed only by applying plans; pods become
    ready one tick after creation unless their image is in `broken`."""

    def __init__(self, podset: dict[str, Any]) -> None:
        self.podset = podset
        self.pods: dict[str, dict[str, Any]] = {}
        self.revisions: dict[str, dict[str, Any]] = {}
        self.now = START
        self.broken: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.serial = itertools.count()
        self.samples: list[tuple[int, int]] = []

    def plan(self) -> dict[str, Any]:
        return r.podset_rollout(self.podset, self.read_pods(), list(self.revisions.values()), stamp(self.now), OWNER)

    def read_pods(self) -> list[dict[str, Any]]:
        """The pods as the role reads them: those the PodSet's selector matches, then those
        podset_owned_selector lists (so a pod in both comes twice), never the whole namespace."""
        selector = self.podset["spec"]["selector"]
        owned = dict([r.podset_owned_selector(self.podset).split("=", 1)])
        pods = list(self.pods.values())
        return ([p for p in pods if podset_selector_matches(p["metadata"].get("labels"), selector)]
                + [p for p in pods if podset_selector_matches(p["metadata"].get("labels"), {"matchLabels": owned})])

    def step(self) -> dict[str, Any]:
        """One reconcile: the plan's requests made as the role makes them (one list per task, in
        the role's order), each as the apiserver would take it; its status and Events."""
        plan = self.plan()
        requests = plan["requests"]
        assert_requests_follow_the_plan(plan)
        for manifest in requests["apply"]:
            self.revisions[manifest["metadata"]["name"]] = copy.deepcopy(manifest)
        for patch in requests["patch"]:
            self.patch(patch)
        for pod in requests["create"]:
            self.create(pod)
        for obj in requests["delete"]:
            del (self.pods if obj["kind"] == "Pod" else self.revisions)[obj["metadata"]["name"]]
        self.podset["status"] = desired_status(self.podset.get("status"), {**plan["counts"], **plan["status"]},
                                               plan["conditions"] or None, now=stamp(self.now))
        self.events += plan["events"]
        self.samples.append((self.total(), self.ready()))
        return plan

    def patch(self, patch: dict[str, Any]) -> None:
        """A strategic merge patch: owner references merged by uid (`$patch: delete` removes
        one), labels merged (a null removes one), a revision's number replaced."""
        name = patch["metadata"]["name"]
        if patch["kind"] == "ControllerRevision":
            self.revisions[name]["revision"] = patch["revision"]
            return
        meta = self.pods[name]["metadata"]
        for ref in patch["metadata"].get("ownerReferences", []):
            kept = [r for r in meta.get("ownerReferences", []) if r["uid"] != ref["uid"]]
            meta["ownerReferences"] = kept if ref.get("$patch") == "delete" else [*kept, dict(ref)]
        labels = meta.setdefault("labels", {})
        for key, value in patch["metadata"].get("labels", {}).items():
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value

    def create(self, pod: dict[str, Any]) -> None:
        meta = copy.deepcopy(pod["metadata"])
        name = meta.pop("generateName") + str(next(self.serial))
        self.pods[name] = {"metadata": {**meta, "name": name, "creationTimestamp": stamp(self.now)},
                           "spec": copy.deepcopy(pod["spec"]), "status": {"phase": "Pending"}}

    def tick(self, seconds: float = 1) -> None:
        """Time passes; pending pods start, and become ready unless their image is broken."""
        self.now += datetime.timedelta(seconds=seconds)
        for pod in self.pods.values():
            if pod["status"].get("phase") == "Pending":
                image = pod["spec"]["containers"][0]["image"]
                ready = image not in self.broken
                pod["status"] = {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp(self.now)}]}

    def total(self) -> int:
        return len(self.pods)

    def ready(self) -> int:
        return sum(1 for p in self.pods.values()
                   if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])))

    def images(self) -> list[str]:
        return sorted(p["spec"]["containers"][0]["image"] for p in self.pods.values())

    def converge(self, steps: int = 60, seconds: float = 1) -> None:
        for _ in range(steps):
            plan = self.step()
            self.tick(seconds)
            if not plan["create"] and not plan["delete"] and not plan["revisions"]["create"] and self.settled():
                return
        raise AssertionError(f"no convergence in {steps} steps: {self.podset.get('status')}")

    def settled(self) -> bool:
        status = self.podset.get("status") or {}
        return status.get("currentRevision") == status.get("updateRevision") and bool(status.get("currentRevision"))

    def condition(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.podset["status"]["conditions"] if c["type"] == kind)

    def set_image(self, image: str) -> None:
        self.podset["spec"]["template"] = template(image)


def assert_requests_follow_the_plan(plan: dict[str, Any]) -> None:
    """The requests are the plan's decisions, no more and no fewer, each for the PodSet's namespace."""
    requests = plan["requests"]
    assert requests["apply"] == plan["revisions"]["create"]
    renumbered = [p for p in requests["patch"] if p["kind"] == "ControllerRevision"]
    assert [(p["metadata"]["name"], p["revision"]) for p in renumbered] == [
        (c["name"], c["revision"]) for c in plan["revisions"]["renumber"]]
    patched = [p["metadata"]["name"] for p in requests["patch"] if p["kind"] == "Pod"]
    assert patched == sorted({*plan["adopt"], *plan["release"], *(c["name"] for c in plan["relabel"]),
                              *plan["label_owned"]})
    assert len(requests["create"]) == plan["create"]
    assert [(d["kind"], d["metadata"]["name"]) for d in requests["delete"]] == [
        *(("Pod", name) for name in plan["replace_terminal"] + plan["delete"]),
        *(("ControllerRevision", name) for name in plan["revisions"]["prune"])]
    for obj in [*requests["patch"], *requests["create"], *requests["delete"]]:
        assert obj["metadata"]["namespace"] == NS
    assert len(plan["summary"]) == sum(len(v) for v in requests.values())


# --- hashes and bounds -----------------------------------------------------------------------


def test_template_hash_is_stable_short_and_order_independent() -> None:
    a = {"metadata": {"labels": {"app": "web", "tier": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    b = {"spec": {"containers": [{"image": "i", "name": "c"}]}, "metadata": {"labels": {"tier": "x", "app": "web"}}}
    assert r.podset_template_hash(a) == r.podset_template_hash(b)
    assert len(r.podset_template_hash(a)) == 10
    assert r.podset_template_hash(a) != r.podset_template_hash(template("other"))
    assert r.podset_template_hash(a, 1) != r.podset_template_hash(a)
    with pytest.raises(AnsibleFilterError):
        r.podset_template_hash("nope")  # type: ignore[arg-type]


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "expected"), [
    (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailable down
    (3, "25%", "25%", (1, 0)),
    (4, "25%", "25%", (1, 1)),
    (3, 0, 0, (0, 1)),  # both zero: unavailable becomes 1
    (3, "0%", "0%", (0, 1)),
    (5, 2, 1, (2, 1)),
    (3, "100%", "100%", (3, 3)),
    (2, 0, 5, (0, 2)),  # never more unavailable than replicas
    (0, "25%", "25%", (0, 1)),
])
def test_rolling_bounds_follow_deployment_rounding(replicas: int, surge: Any, unavailable: Any,
                                                   expected: tuple[int, int]) -> None:
    ps = make_podset(replicas, strategy={"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    bounds = r.podset_rolling_bounds(ps)
    assert (bounds["maxSurge"], bounds["maxUnavailable"]) == (expected[0], min(expected[1], replicas))


def test_rolling_bounds_default_to_25_percent_and_recreate_has_no_surge() -> None:
    ps = make_podset(8, strategy={"type": "RollingUpdate"})
    assert r.podset_rolling_bounds(ps) == {"maxSurge": 2, "maxUnavailable": 2}
    assert r.podset_rolling_bounds(make_podset(4, strategy={"type": "Recreate"})) == {"maxSurge": 0,
                                                                                     "maxUnavailable": 4}


@pytest.mark.parametrize("bad", ["150", "x%", "-1", -1, True, "1.5%"])
def test_bad_bounds_fail_clearly(bad: Any) -> None:
    ps = make_podset(3, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": bad}})
    if bad == "150":  # a plain number in a string is a count, as in a Deployment
        assert r.podset_rolling_bounds(ps)["maxSurge"] == 150
        return
    with pytest.raises(AnsibleFilterError, match="maxSurge"):
        r.podset_rolling_bounds(ps)


# --- first rollout and steady state --------------------------------------------------------


def test_first_reconcile_records_revision_1_and_creates_the_pods() -> None:
    ns = Namespace(make_podset(3))
    plan = ns.step()
    [record] = plan["revisions"]["create"]
    digest = r.podset_template_hash(template("web:1"))
    assert record["metadata"]["name"] == f"web-{digest}"
    assert record["revision"] == 1
    assert record["data"] == {"template": template("web:1")}
    assert r.podset_revision_template(record) == template("web:1")
    assert record["metadata"]["labels"] == {r.PODSET_LABEL: "web", r.HASH_LABEL: digest}
    assert record["metadata"]["ownerReferences"] == [OWNER]
    assert plan["create"] == 3
    assert plan["create_template"]["labels"] == {"app": "web", r.HASH_LABEL: digest}
    assert ns.podset["status"]["updateRevision"] == f"web-{digest}"
    assert "currentRevision" not in ns.podset["status"]
    assert ns.condition("Progressing")["reason"] == "NewReplicaSetCreated"


def test_converged_podset_plans_nothing_and_keeps_its_conditions() -> None:
    ns = Namespace(make_podset(3))
    ns.converge()
    before = copy.deepcopy(ns.podset["status"])
    ns.tick(3600)
    plan = ns.step()
    assert (plan["create"], plan["delete"], plan["revisions"]) == (0, [], {"create": [], "renumber": [], "prune": []})
    assert plan["requeue_after"] == 0
    assert ns.podset["status"] == before
    assert ns.condition("Progressing")["reason"] == "NewReplicaSetAvailable"
    assert ns.condition("Available")["status"] == "True"


def test_a_lost_pod_of_a_finished_rollout_is_replaced_without_a_deadline() -> None:
    ns = Namespace(make_podset(3, deadline=5))
    ns.converge()
    del ns.pods[next(iter(ns.pods))]
    ns.tick(3600)
    plan = ns.step()
    assert plan["create"] == 1
    assert ns.condition("Progressing")["reason"] == "NewReplicaSetAvailable"
    assert not plan["events"]


# --- rolling update ------------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "surge", "unavailable"), [
    (3, "25%", "25%"), (4, 1, 1), (5, 0, 1), (5, 2, 0), (10, "30%", "20%"), (1, 1, 0), (1, 0, 1), (6, 6, 0),
])
def test_rolling_update_never_crosses_its_bounds(replicas: int, surge: Any, unavailable: Any) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    ns = Namespace(make_podset(replicas, strategy=strategy))
    ns.converge()
    bounds = r.podset_rolling_bounds(ns.podset)
    ns.samples.clear()
    ns.set_image("web:2")
    ns.converge()
    assert ns.images() == ["web:2"] * replicas
    for total, ready in ns.samples:
        assert total <= replicas + bounds["maxSurge"]
        assert ready >= replicas - bounds["maxUnavailable"]
    assert len(ns.samples) > 1
    status = ns.podset["status"]
    assert status["currentRevision"] == status["updateRevision"] == f"web-{r.podset_template_hash(template('web:2'))}"
    assert status["updatedReplicas"] == replicas


def test_rollout_replaces_unavailable_old_pods_first() -> None:
    ns = Namespace(make_podset(4, strategy={"type": "RollingUpdate",
                                            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}))
    ns.converge()
    sick = sorted(ns.pods)[2]
    ns.pods[sick]["status"]["conditions"][0]["status"] = "False"
    ns.set_image("web:2")
    plan = ns.plan()
    assert plan["delete"] == [sick]


def test_minready_seconds_slows_the_rollout_and_asks_to_look_again() -> None:
    ns = Namespace(make_podset(2, min_ready=10, strategy={"type": "RollingUpdate",
                                                          "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    ns.converge(seconds=11)
    ns.set_image("web:2")
    plan = ns.step()
    assert plan["create"] == 1 and plan["delete"] == []
    ns.tick(1)  # ready now, but not available for another 10 s
    plan = ns.step()
    assert plan["delete"] == []
    assert 1 <= plan["requeue_after"] <= 11


# --- Recreate ------------------------------------------------------------------------------


def test_recreate_removes_every_old_pod_before_creating_new_ones() -> None:
    ns = Namespace(make_podset(3, strategy={"type": "Recreate"}))
    ns.converge()
    ns.set_image("web:2")
    plan = ns.step()
    assert plan["create"] == 0 and len(plan["delete"]) == 3
    plan = ns.step()
    assert plan["create"] == 3
    ns.converge()
    assert ns.images() == ["web:2"] * 3


def test_recreate_waits_for_old_pods_still_terminating() -> None:
    ns = Namespace(make_podset(2, strategy={"type": "Recreate"}))
    ns.converge()
    ns.set_image("web:2")
    for pod in ns.pods.values():
        pod["metadata"]["deletionTimestamp"] = stamp(ns.now)
    assert ns.plan()["create"] == 0


# --- deadline and rollback -----------------------------------------------------------------


def broken_rollout(rollback: bool = True, deadline: int = 30) -> Namespace:
    ns = Namespace(make_podset(3, deadline=deadline, rollback=rollback))
    ns.converge()
    ns.broken.add("web:2")
    ns.set_image("web:2")
    return ns


def test_a_template_that_never_becomes_ready_is_rolled_back_after_the_deadline() -> None:
    ns = broken_rollout()
    good = ns.podset["status"]["currentRevision"]
    bad = f"web-{r.podset_template_hash(template('web:2'))}"
    for _ in range(5):
        plan = ns.step()
        ns.tick(1)
    assert ns.condition("Progressing")["reason"] == "ReplicaSetUpdated"
    assert 1 <= plan["requeue_after"] <= 31
    assert "web:2" in ns.images()
    ns.tick(30)
    plan = ns.step()
    [event] = plan["events"]
    assert event["reason"] == "RolledBack" and good in event["message"] and bad in event["message"]
    assert "revision 2" in event["message"] and "revision 1" in event["message"]
    status = ns.podset["status"]
    assert status["failedRevision"] == bad
    assert status["updateRevision"] == status["currentRevision"] == good
    assert ns.condition("Progressing")["status"] == "False"
    assert ns.condition("Progressing")["reason"] == "ProgressDeadlineExceeded"
    assert plan["delete"], "the broken pods go at once"
    ns.converge()
    assert ns.images() == ["web:1"] * 3
    # It stays on the good revision: no new Event, no new attempt, however long it waits.
    for _ in range(3):
        ns.tick(3600)
        plan = ns.step()
        assert plan["create"] == 0 and not plan["events"]
    assert ns.condition("Progressing")["reason"] == "ProgressDeadlineExceeded"
    assert len(ns.events) == 1


def test_a_new_template_after_a_rollback_rolls_out_again() -> None:
    ns = broken_rollout()
    for _ in range(3):
        ns.step()
        ns.tick(40)
    assert ns.podset["status"].get("failedRevision")
    ns.converge()
    ns.set_image("web:3")
    ns.converge()
    assert ns.images() == ["web:3"] * 3
    assert "failedRevision" not in ns.podset["status"]
    assert ns.condition("Progressing")["reason"] == "NewReplicaSetAvailable"


def test_with_rollback_disabled_it_only_reports() -> None:
    ns = broken_rollout(rollback=False)
    for _ in range(3):
        ns.step()
        ns.tick(40)
    status = ns.podset["status"]
    assert "failedRevision" not in status
    assert ns.condition("Progressing")["reason"] == "ProgressDeadlineExceeded"
    assert [e["reason"] for e in ns.events] == ["ProgressDeadlineExceeded"]
    assert "rollback is disabled" in ns.events[0]["message"]
    assert "web:2" in ns.images()


def test_a_first_rollout_that_fails_has_nothing_to_roll_back_to() -> None:
    ns = Namespace(make_podset(2, deadline=10))
    ns.broken.add("web:1")
    for _ in range(4):
        ns.step()
        ns.tick(6)
    assert ns.condition("Progressing")["reason"] == "ProgressDeadlineExceeded"
    assert "no healthy revision" in ns.events[0]["message"]
    assert ns.images() == ["web:1", "web:1"]


# --- pause ---------------------------------------------------------------------------------


def test_paused_freezes_the_rollout_but_keeps_the_count() -> None:
    ns = Namespace(make_podset(4, strategy={"type": "RollingUpdate",
                                            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    ns.converge()
    ns.set_image("web:2")
    ns.step()
    ns.tick()
    ns.step()
    ns.tick()
    frozen = ns.images()
    assert frozen.count("web:2") >= 1 and frozen.count("web:1") >= 1
    ns.podset["spec"]["paused"] = True
    for _ in range(3):
        plan = ns.step()
        ns.tick(3600)
        assert plan["delete"] == [] and plan["create"] == 0
    assert ns.images() == frozen
    assert ns.condition("Progressing")["reason"] == "DeploymentPaused"
    del ns.pods[sorted(ns.pods)[-1]]
    plan = ns.step()
    assert plan["create"] == 1
    ns.podset["spec"]["paused"] = False
    ns.tick()
    ns.converge()
    assert ns.images() == ["web:2"] * 4


def test_a_template_change_while_paused_is_not_rolled_out() -> None:
    ns = Namespace(make_podset(2))
    ns.converge()
    ns.podset["spec"]["paused"] = True
    ns.set_image("web:2")
    plan = ns.step()
    assert plan["revisions"]["create"] == [] and plan["create"] == 0 and plan["delete"] == []
    assert ns.images() == ["web:1", "web:1"]


# --- revisions -----------------------------------------------------------------------------


def test_going_back_to_an_old_template_renumbers_its_revision() -> None:
    ns = Namespace(make_podset(2))
    ns.converge()
    ns.set_image("web:2")
    ns.converge()
    ns.set_image("web:1")
    plan = ns.step()
    first = f"web-{r.podset_template_hash(template('web:1'))}"
    assert plan["revisions"]["create"] == []
    assert plan["revisions"]["renumber"] == [{"name": first, "revision": 3}]
    ns.converge()
    assert ns.images() == ["web:1", "web:1"]
    assert ns.plan()["revisions"]["renumber"] == []


def test_history_is_pruned_to_the_limit_oldest_first() -> None:
    ns = Namespace(make_podset(1, history=2))
    for version in range(1, 7):
        ns.set_image(f"web:{version}")
        ns.converge()
    numbers = sorted(rec["revision"] for rec in ns.revisions.values())
    assert numbers == [4, 5, 6]  # the current one and two old ones
    ns.podset["spec"]["revisionHistoryLimit"] = 0
    ns.converge()
    assert [rec["revision"] for rec in ns.revisions.values()] == [6]


def test_a_revision_with_pods_is_never_pruned() -> None:
    ns = Namespace(make_podset(2, history=0, strategy={"type": "RollingUpdate",
                                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    ns.converge()
    ns.set_image("web:2")
    plan = ns.step()
    assert plan["revisions"]["prune"] == []
    assert len(ns.revisions) == 2


def test_revisions_of_other_podsets_are_ignored() -> None:
    foreign = {"metadata": {"name": "web-x", "ownerReferences": [{**OWNER, "uid": "other"}]}, "revision": 7}
    ps = make_podset(1)
    plan = r.podset_rollout(ps, [], [foreign], stamp(START), OWNER)
    assert plan["revisions"]["create"][0]["revision"] == 1
    assert plan["revisions"]["prune"] == []


def test_a_hash_collision_counts_up_and_plans_nothing_else() -> None:
    ps = make_podset(1)
    name = f"web-{r.podset_template_hash(template('web:1'))}"
    impostor = {"metadata": {"name": name, "labels": {r.HASH_LABEL: name[4:]}, "ownerReferences": [OWNER]},
                "data": {"template": template("something else")}, "revision": 1}
    plan = r.podset_rollout(ps, [], [impostor], stamp(START), OWNER)
    assert plan["status"] == {"collisionCount": 1}
    assert plan["create"] == 0 and plan["requeue_after"] == 1
    ps["status"] = {"collisionCount": 1}
    plan = r.podset_rollout(ps, [], [impostor], stamp(START), OWNER)
    assert plan["revisions"]["create"][0]["metadata"]["name"] != name


def test_change_cause_is_kept_on_the_revision() -> None:
    ps = make_podset(1)
    ps["metadata"]["annotations"] = {r.CHANGE_CAUSE: "kubectl apply web:1"}
    plan = r.podset_rollout(ps, [], [], stamp(START), OWNER)
    assert plan["revisions"]["create"][0]["metadata"]["annotations"] == {r.CHANGE_CAUSE: "kubectl apply web:1"}


def test_revision_selector() -> None:
    assert r.podset_owned_selector(make_podset()) == f"{r.PODSET_LABEL}=web"


def test_a_podset_being_deleted_plans_no_pods_and_no_revisions() -> None:
    ps = make_podset(3)
    ps["metadata"]["deletionTimestamp"] = stamp(START)
    plan = r.podset_rollout(ps, [], [], stamp(START), OWNER)
    assert plan["create"] == 0 and plan["revisions"]["create"] == []


def test_revision_template_reads_what_a_record_keeps() -> None:
    assert r.podset_revision_template({"data": {"template": template()}}) == template()
    assert r.podset_revision_template({"data": "not an object"}) is None
    assert r.podset_revision_template({}) is None


# --- pods without a revision label ---------------------------------------------------------


def live_pod(name: str, tmpl: dict[str, Any], *, owned: bool = False, ready: bool = True) -> dict[str, Any]:
    """A pod made from `tmpl` by hand (no pod-template-hash label), as the apiserver returns it once
    admission, defaulting and the scheduler are done with it."""
    spec = copy.deepcopy(tmpl["spec"])
    token = {"name": "kube-api-access-x1y2z", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
             "readOnly": True}
    for container in spec["containers"]:
        container.update({"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                          "terminationMessagePolicy": "File", "resources": container.get("resources", {})})
        container["volumeMounts"] = [*container.get("volumeMounts", []), token]
    spec.update({"nodeName": "kwok-node-1", "serviceAccountName": "default", "serviceAccount": "default",
                 "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                 "securityContext": {}, "terminationGracePeriodSeconds": 30, "enableServiceLinks": True,
                 "priority": 0, "preemptionPolicy": "PreemptLowerPriority"})
    spec["volumes"] = [*spec.get("volumes", []), {"name": token["name"], "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}], "defaultMode": 420}}]
    spec["tolerations"] = [*spec.get("tolerations", []), *(
        {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        for taint in ("not-ready", "unreachable"))]
    meta = tmpl.get("metadata", {})
    return {
        "metadata": {"name": name, "namespace": NS, "labels": dict(meta.get("labels", {})),
                     "annotations": {**meta.get("annotations", {}), "kubectl.kubernetes.io/last-applied": "{}"},
                     "ownerReferences": [dict(OWNER)] if owned else [], "creationTimestamp": stamp(START),
                     "uid": f"uid-{name}", "resourceVersion": "1"},
        "spec": spec,
        "status": {"phase": "Running", "qosClass": "BestEffort", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp(START)}]},
    }


def rich_template() -> dict[str, Any]:
    """A template that sets what the apiserver is known to rewrite or add to."""
    tmpl = template("web:1", {"team": "shop"})
    tmpl["spec"] = {
        "initContainers": [{"name": "migrate", "image": "web:1", "command": ["migrate", "--up"]},
                           {"name": "warm", "image": "web:1"}],
        "containers": [{"name": "web", "image": "web:1", "args": ["--port", "8080"],
                        "ports": [{"containerPort": 8080}], "env": [{"name": "MODE", "value": "prod"}],
                        "resources": {"requests": {"cpu": 0.5, "memory": "1024Mi"}, "limits": {"cpu": 1}},
                        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}],
        "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "0.5Gi"}}],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
        "hostNetwork": False,
        "imagePullSecrets": [],
    }
    return tmpl


def as_the_apiserver_returns(tmpl: dict[str, Any]) -> dict[str, Any]:
    pod = live_pod("by-hand", tmpl)
    spec = pod["spec"]
    del spec["hostNetwork"], spec["imagePullSecrets"]  # zero values are left out
    web = spec["containers"][0]
    web["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}}
    web["ports"][0]["protocol"] = "TCP"
    web["readinessProbe"].update({"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                                  "failureThreshold": 3})
    web["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
    spec["volumes"][0]["emptyDir"]["sizeLimit"] = "512Mi"
    return pod


def test_a_pod_runs_a_template_whatever_the_apiserver_added() -> None:
    tmpl = rich_template()
    assert r.podset_runs_template(as_the_apiserver_returns(tmpl), tmpl)
    assert r.podset_runs_template(live_pod("plain", template("web:1")), template("web:1"))
    # A container injected by admission is an addition too.
    injected = as_the_apiserver_returns(tmpl)
    injected["spec"]["containers"].append({"name": "proxy", "image": "mesh:1"})
    assert r.podset_runs_template(injected, tmpl)


def _changed(change: Any) -> dict[str, Any]:
    pod = as_the_apiserver_returns(rich_template())
    change(pod)
    return pod


@pytest.mark.parametrize(("what", "change"), [
    ("another image", lambda p: p["spec"]["containers"][0].update(image="web:0")),
    ("other args", lambda p: p["spec"]["containers"][0].update(args=["--port", "8081"])),
    ("args in another order", lambda p: p["spec"]["containers"][0].update(args=["8080", "--port"])),
    ("an extra argument", lambda p: p["spec"]["containers"][0]["args"].append("--debug")),
    ("another env value", lambda p: p["spec"]["containers"][0]["env"][0].update(value="dev")),
    ("no env", lambda p: p["spec"]["containers"][0].pop("env")),
    ("less cpu", lambda p: p["spec"]["containers"][0]["resources"]["requests"].update(cpu="499m")),
    ("no limits", lambda p: p["spec"]["containers"][0]["resources"].pop("limits")),
    ("a smaller emptyDir", lambda p: p["spec"]["volumes"][0]["emptyDir"].update(sizeLimit="511Mi")),
    ("the template's volume missing", lambda p: p["spec"]["volumes"].pop(0)),
    ("init containers swapped", lambda p: p["spec"]["initContainers"].reverse()),
    ("a template container missing", lambda p: p["spec"].update(initContainers=p["spec"]["initContainers"][:1])),
    ("another toleration", lambda p: p["spec"]["tolerations"][0].update(value="api")),
    ("host network", lambda p: p["spec"].update(hostNetwork=True)),
    ("another probe path", lambda p: p["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(path="/")),
    ("a template annotation missing", lambda p: p["metadata"]["annotations"].pop("team")),
    ("a template label with another value", lambda p: p["metadata"]["labels"].update(app="api")),
    ("a number where the template has true", lambda p: p["spec"].update(hostNetwork=1)),
])
def test_a_pod_that_differs_in_what_the_template_sets_does_not_run_it(what: str, change: Any) -> None:
    assert not r.podset_runs_template(_changed(change), rich_template()), what


def test_runs_template_refuses_what_is_not_a_pod_or_a_template() -> None:
    with pytest.raises(AnsibleFilterError):
        r.podset_runs_template("pod", template())  # type: ignore[arg-type]
    with pytest.raises(AnsibleFilterError):
        r.podset_runs_template(live_pod("p", template()), ["template"])  # type: ignore[arg-type]


def test_orphans_that_run_the_template_are_adopted_labelled_and_kept() -> None:
    # Two pods made by hand from the template, then a PodSet of 3 (maxSurge 1, maxUnavailable 0).
    ns = Namespace(make_podset(3))
    ns.pods = {name: live_pod(name, template("web:1")) for name in ("hand-a", "hand-b")}
    digest = r.podset_template_hash(template("web:1"))
    plan = ns.step()
    assert plan["adopt"] == ["hand-a", "hand-b"]
    assert plan["relabel"] == [{"name": "hand-a", "labels": {r.HASH_LABEL: digest}},
                               {"name": "hand-b", "labels": {r.HASH_LABEL: digest}}]
    assert (plan["create"], plan["delete"]) == (1, [])
    assert ns.podset["status"]["updatedReplicas"] == 2
    ns.tick()
    ns.converge()
    assert {"hand-a", "hand-b"} <= set(ns.pods) and len(ns.pods) == 3
    assert {p["metadata"]["labels"][r.HASH_LABEL] for p in ns.pods.values()} == {digest}
    assert ns.podset["status"]["currentRevision"] == f"web-{digest}"
    # Converged: nothing more to label.
    assert ns.plan()["relabel"] == []


@pytest.mark.parametrize("strategy", [{"type": "Recreate"}, {"type": "RollingUpdate",
                                                             "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}])
def test_owned_pods_without_a_hash_that_run_the_template_are_kept(strategy: dict[str, Any]) -> None:
    # Pods made before revisions existed: owned, no pod-template-hash label.
    ns = Namespace(make_podset(2, strategy=strategy))
    ns.pods = {name: live_pod(name, template("web:1"), owned=True) for name in ("web-old-a", "web-old-b")}
    plan = ns.step()
    assert [change["name"] for change in plan["relabel"]] == ["web-old-a", "web-old-b"]
    assert (plan["create"], plan["delete"]) == (0, [])
    ns.tick()
    ns.converge()
    assert sorted(ns.pods) == ["web-old-a", "web-old-b"]


def test_pods_that_differ_are_still_replaced_within_the_bounds() -> None:
    ns = Namespace(make_podset(3, strategy={"type": "RollingUpdate",
                                            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    ns.pods = {
        "same": live_pod("same", template("web:1")),
        "older-image": live_pod("older-image", template("web:0")),
        "no-annotation": live_pod("no-annotation", template("web:1")),
    }
    ns.podset["spec"]["template"] = template("web:1", {"team": "shop"})
    ns.pods["same"]["metadata"]["annotations"]["team"] = "shop"
    plan = ns.step()
    assert [change["name"] for change in plan["relabel"]] == ["same"]
    assert plan["create"] == 1 and plan["delete"] == []
    ns.tick()
    ns.converge()
    assert "same" in ns.pods and "older-image" not in ns.pods and "no-annotation" not in ns.pods
    assert len(ns.pods) == 3
    for total, ready in ns.samples:
        assert total <= 4 and ready >= 3


def test_only_pods_without_a_hash_are_relabelled_and_not_while_the_podset_goes() -> None:
    ns = Namespace(make_podset(2))
    ns.converge()
    # Another revision's pod with the same spec keeps its label: it is that revision's.
    other = next(iter(ns.pods.values()))
    other["metadata"]["labels"][r.HASH_LABEL] = "0123456789"
    assert ns.plan()["relabel"] == []
    hand = live_pod("hand", template("web:1"), owned=True)
    ns.pods["hand"] = hand
    assert [change["name"] for change in ns.plan()["relabel"]] == ["hand"]
    ns.podset["metadata"]["deletionTimestamp"] = stamp(ns.now)
    assert ns.plan()["relabel"] == []


# --- the plan as requests ------------------------------------------------------------------


def test_a_first_reconcile_is_a_record_to_apply_and_pods_to_create_with_a_line_each() -> None:
    plan = r.podset_rollout(make_podset(3), [], [], stamp(START), OWNER)
    requests = plan["requests"]
    record = plan["revisions"]["create"][0]
    digest = record["metadata"]["labels"][r.HASH_LABEL]
    assert requests["apply"] == [record]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "web-", "namespace": NS,
                            "labels": {"app": "web", r.HASH_LABEL: digest, r.PODSET_LABEL: "web"},
                        "annotations": {}, "ownerReferences": [OWNER]},
           "spec": template("web:1")["spec"]}
    assert requests["create"] == [pod, pod, pod]
    assert (requests["patch"], requests["delete"]) == ([], [])
    assert plan["summary"] == [f"apply ControllerRevision web-{digest}: revision 1",
                               *(f"create Pod web-* ({n} of 3), revision web-{digest}" for n in (1, 2, 3))]


def test_a_pod_adopted_and_labelled_gets_one_patch_and_a_released_one_loses_only_this_owner() -> None:
    ns = Namespace(make_podset(2))
    ns.converge()
    digest = r.podset_template_hash(template("web:1"))
    moved = sorted(ns.pods)[0]
    ns.pods[moved]["metadata"]["labels"]["app"] = "elsewhere"
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keeper", "uid": "another-uid"}
    ns.pods[moved]["metadata"]["ownerReferences"].append(other)
    ns.pods["hand"] = live_pod("hand", template("web:1"))
    plan = ns.plan()
    assert plan["requests"]["patch"] == [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "hand", "namespace": NS, "ownerReferences": [OWNER],
                      "labels": {r.PODSET_LABEL: "web", r.HASH_LABEL: digest}}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": moved, "namespace": NS, "ownerReferences": [{"uid": UID, "$patch": "delete"}],
                      "labels": {r.PODSET_LABEL: None}}},
    ]
    assert plan["summary"] == [f"patch Pod hand: adopt, label {r.HASH_LABEL}={digest}, label {r.PODSET_LABEL}=web",
                               f"patch Pod {moved}: release, unlabel {r.PODSET_LABEL}"]
    ns.step()
    assert ns.pods[moved]["metadata"]["ownerReferences"] == [other]
    # Released, it is no longer among the pods the role reads.
    assert moved not in {p["metadata"]["name"] for p in ns.read_pods()}
    assert ns.plan()["requests"]["patch"] == []
    assert ns.pods["hand"]["metadata"]["ownerReferences"] == [OWNER]
    assert ns.pods["hand"]["metadata"]["labels"] == {"app": "web", r.HASH_LABEL: digest, r.PODSET_LABEL: "web"}


def test_a_revision_that_is_back_is_renumbered_before_any_pod_is_patched() -> None:
    ns = Namespace(make_podset(1))
    ns.converge()
    first = next(iter(ns.revisions))
    ns.set_image("web:2")
    ns.converge()
    ns.set_image("web:1")
    ns.pods["hand"] = live_pod("hand", template("web:1"))
    plan = ns.plan()
    assert plan["requests"]["patch"][0] == {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                                            "metadata": {"name": first, "namespace": NS}, "revision": 3}
    assert [p["kind"] for p in plan["requests"]["patch"]] == ["ControllerRevision", "Pod"]
    assert plan["summary"][0] == f"patch ControllerRevision {first}: revision 3"


def test_ended_pods_go_first_then_surplus_pods_then_revisions_beyond_the_limit() -> None:
    ns = Namespace(make_podset(3))
    ns.converge()
    ns.set_image("web:2")
    ns.converge()
    ended = sorted(ns.pods)[0]
    ns.pods[ended]["status"]["phase"] = "Failed"
    ns.podset["spec"]["replicas"] = 1
    ns.podset["spec"]["revisionHistoryLimit"] = 0
    plan = ns.plan()
    surplus = plan["delete"]
    old_revision = plan["revisions"]["prune"]
    assert len(surplus) == 1 and len(old_revision) == 1
    assert [(d["kind"], d["metadata"]["name"]) for d in plan["requests"]["delete"]] == [
        ("Pod", ended), ("Pod", surplus[0]), ("ControllerRevision", old_revision[0])]
    assert plan["summary"] == [f"delete Pod {ended}", f"delete Pod {surplus[0]}",
                               f"delete ControllerRevision {old_revision[0]}"]
    assert all(d == {"apiVersion": d["apiVersion"], "kind": d["kind"],
                     "metadata": {"name": d["metadata"]["name"], "namespace": NS}}
               for d in plan["requests"]["delete"])


def test_a_hash_collision_still_adopts_and_replaces_nothing() -> None:
    ps = make_podset(1)
    name = f"web-{r.podset_template_hash(template('web:1'))}"
    impostor = {"metadata": {"name": name, "labels": {r.HASH_LABEL: name[4:]}, "ownerReferences": [OWNER]},
                "data": {"template": template("something else")}, "revision": 1}
    plan = r.podset_rollout(ps, [live_pod("hand", template("web:1"))], [impostor], stamp(START), OWNER)
    assert plan["adopt"] == ["hand"]
    assert plan["requests"] == {"apply": [], "patch": [{"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "hand", "namespace": NS, "ownerReferences": [OWNER], "labels": {r.PODSET_LABEL: "web"}}}],
        "create": [], "delete": []}
    assert plan["summary"] == [f"patch Pod hand: adopt, label {r.PODSET_LABEL}=web"]


def test_an_owned_pod_whose_labels_stop_matching_is_found_by_the_podsets_own_label_and_released() -> None:
    ns = Namespace(make_podset(3))
    ns.converge()
    assert all(p["metadata"]["labels"][r.PODSET_LABEL] == "web" for p in ns.pods.values())
    moved = sorted(ns.pods)[1]
    ns.pods[moved]["metadata"]["labels"]["app"] = "debug"
    assert moved in {p["metadata"]["name"] for p in ns.read_pods()}
    plan = ns.step()
    assert plan["release"] == [moved] and plan["create"] == 1
    assert ns.pods[moved]["metadata"]["ownerReferences"] == []
    assert r.PODSET_LABEL not in ns.pods[moved]["metadata"]["labels"]
    ns.converge()
    assert ns.total() == 4  # three of the PodSet's, and the released one left alone


def test_owned_pods_made_without_the_podsets_label_get_it_once() -> None:
    ns = Namespace(make_podset(2))
    ns.converge()
    for pod in ns.pods.values():
        del pod["metadata"]["labels"][r.PODSET_LABEL]
    plan = ns.plan()
    assert plan["label_owned"] == sorted(ns.pods)
    assert [p["metadata"] for p in plan["requests"]["patch"]] == [
        {"name": name, "namespace": NS, "labels": {r.PODSET_LABEL: "web"}} for name in sorted(ns.pods)]
    assert plan["create"] == 0 and plan["delete"] == []
    ns.step()
    assert ns.plan()["requests"]["patch"] == []
    ns.podset["metadata"]["deletionTimestamp"] = stamp(START)
    del ns.pods[sorted(ns.pods)[0]]["metadata"]["labels"][r.PODSET_LABEL]
    assert ns.plan()["label_owned"] == []


def test_a_pod_both_reads_found_counts_once() -> None:
    ns = Namespace(make_podset(3))
    ns.converge()
    assert len(ns.read_pods()) == 6
    plan = ns.plan()
    assert plan["counts"]["replicas"] == 3 and plan["create"] == 0 and plan["delete"] == []
