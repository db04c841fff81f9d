"""Properties of the ServiceBinding projection (playbook_operator.bindings projector.py and
plan.py, through the servicebinding_projection filter): for any workload (containers and init
containers, their env and mounts, pod volumes, a SERVICE_BINDING_ROOT of their own or not,
annotations or not) and any binding, projecting then removing gives back exactly the workload,
projecting twice is projecting once, and two bindings come and go in any order without
disturbing each other or the workload.

Workloads are drawn as the apiserver returns them: no null fields and no empty annotation map
(it leaves those out).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit import test_servicebinding_filters as sb

pytestmark = pytest.mark.unit

f = sb.f  # the filters, imported once the collections are on sys.path

# Fixed examples, no example database, and no deadline (a loaded machine makes timings unreliable).
SETTINGS = settings(max_examples=80, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

SECRETS = ["creds", "s2"]
ROOT = "SERVICE_BINDING_ROOT"

# --- workloads ----------------------------------------------------------------------------


BINDING_ENV_NAMES = ["A", "B", "DB_USER", "KIND"]


@st.composite
def env_vars(draw: st.DrawFn, clash: bool = False) -> dict[str, Any]:
    """A variable of the workload's own. Only with `clash` may one reference a binding's Secret
    under a name a binding gives a variable of its own (see the xfail tests at the end)."""
    name = draw(st.sampled_from(["X", *BINDING_ENV_NAMES, ROOT]))
    if name == ROOT:
        return {"name": ROOT, "value": draw(st.sampled_from(["/bindings", "/custom", "/srv/b"]))}
    if draw(st.booleans()):
        return {"name": name, "value": draw(st.sampled_from(["1", "admin", ""]))}
    secrets = ["mine", *SECRETS] if clash or name == "X" else ["mine"]
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": draw(st.sampled_from(secrets)),
                                                         "key": draw(st.sampled_from(["a", "password"]))}}}


# Mounts of the workload's own; only with `clash` one under the default SERVICE_BINDING_ROOT.
MOUNTS = [{"name": "data", "mountPath": "/data"}, {"name": "cache", "mountPath": "/cache"},
          {"name": "conf", "mountPath": "/custom/x"}]
CLASHING_MOUNT = {"name": "data", "mountPath": "/bindings/data"}


@st.composite
def containers(draw: st.DrawFn, names: list[str], clash: bool = False) -> list[dict[str, Any]]:
    out = []
    mounts = st.sampled_from([*MOUNTS, CLASHING_MOUNT] if clash else MOUNTS)
    for name in names:
        c: dict[str, Any] = {"name": name, "image": f"{name}:1"}
        if draw(st.booleans()):
            c["env"] = draw(st.lists(env_vars(clash), min_size=1, max_size=3))
        if draw(st.booleans()):
            c["volumeMounts"] = draw(st.lists(mounts, min_size=1, max_size=2))
        out.append(c)
    return out


CONTAINER_NAMES = ["app", "sidecar", "proxy"]


@st.composite
def workloads(draw: st.DrawFn, clash: bool = False) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(CONTAINER_NAMES), min_size=1, max_size=3, unique=True))
    pod_spec: dict[str, Any] = {}
    if draw(st.booleans()):
        pod_spec["initContainers"] = draw(containers(draw(st.lists(st.sampled_from(["init", "migrate"]), min_size=1,
                                                                    max_size=2, unique=True)), clash))
    if draw(st.booleans()):
        pod_spec["volumes"] = draw(st.lists(st.sampled_from([{"name": "data", "emptyDir": {}},
                                                             {"name": "cache", "emptyDir": {"medium": "Memory"}}]),
                                            min_size=1, max_size=2))
    w = sb.deployment(containers=draw(containers(names, clash)), **pod_spec)
    if draw(st.booleans()):
        w["metadata"]["generation"] = draw(st.integers(1, 9))
    if draw(st.booleans()):
        w["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "3"}
    template_meta = w["spec"]["template"]["metadata"]
    choice = draw(st.sampled_from(["labels only", "annotations", "no metadata"]))
    if choice == "annotations":
        template_meta["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2024-06-01T12:00:00Z"}
    elif choice == "no metadata":
        del w["spec"]["template"]["metadata"]
    return w


@st.composite
def bindings(draw: st.DrawFn, uid: str = sb.UID, name: str = "db") -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["env"] = draw(st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(BINDING_ENV_NAMES),
                                   "key": st.sampled_from(["a", "password", "type", "provider"])}),
            max_size=3, unique_by=lambda item: item["name"]))
    for field in ("type", "provider"):
        if draw(st.booleans()):
            spec[field] = draw(st.sampled_from(["postgresql", "mysql"]))
    if draw(st.booleans()):
        spec["workload"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                            "containers": draw(st.lists(st.sampled_from([*CONTAINER_NAMES, "init", "missing"]),
                                                        min_size=1, max_size=3, unique=True))}
    b = sb.binding(uid, name, **spec)
    if draw(st.booleans()):
        b["spec"]["name"] = draw(st.sampled_from(["account-db", "data"]))
    return b


def without_version(workload: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(workload)
    out["metadata"].pop("resourceVersion", None)
    return out


def bind(workload: dict[str, Any], binding: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """One reconcile's projection applied, as the apiserver would have the workload after it."""
    result = f.servicebinding_projection(workload, binding, secret)
    assert result["error"] is None
    return sb.applied(workload, result) if result["changed"] else workload


# --- properties ---------------------------------------------------------------------------


@SETTINGS
@given(workload=workloads(), binding=bindings(), secret=st.sampled_from(SECRETS))
def test_projecting_then_removing_gives_back_the_workload(workload: dict[str, Any], binding: dict[str, Any],
                                                          secret: str) -> None:
    before = copy.deepcopy(workload)
    bound = bind(workload, binding, secret)
    assert workload == before, "the input must not change"
    unbound = bind(bound, binding, None)
    assert without_version(unbound) == without_version(workload)


@SETTINGS
@given(workload=workloads(), binding=bindings(), secret=st.sampled_from(SECRETS))
def test_projecting_twice_is_projecting_once(workload: dict[str, Any], binding: dict[str, Any], secret: str) -> None:
    bound = bind(workload, binding, secret)
    again = f.servicebinding_projection(bound, binding, secret)
    assert (again["changed"], again["patch"], again["projected"]) == (False, [], True)
    assert again["workload"] == bound
    # ...and removing twice is removing once.
    unbound = bind(bound, binding, None)
    assert f.servicebinding_projection(unbound, binding, None)["changed"] is False


@SETTINGS
@given(workload=workloads(), binding=bindings(), first=st.sampled_from(SECRETS), second=st.sampled_from(SECRETS))
def test_a_rotated_secret_is_a_projection_of_the_new_one(workload: dict[str, Any], binding: dict[str, Any],
                                                         first: str, second: str) -> None:
    rotated = bind(bind(workload, binding, first), binding, second)
    fresh = bind(workload, binding, second)
    assert without_version(rotated) == without_version(fresh)


@SETTINGS
@given(workload=workloads(), a=bindings(sb.UID, "one"), b=bindings(sb.OTHER, "two"),
       order=st.permutations(["a", "b"]), again=st.sampled_from(["a", "b", None]))
def test_two_bindings_come_and_go_in_any_order(workload: dict[str, Any], a: dict[str, Any], b: dict[str, Any],
                                               order: list[str], again: str | None) -> None:
    pair = {"a": (a, "creds"), "b": (b, "s2")}
    both = bind(bind(workload, a, "creds"), b, "s2")
    # Neither reconciling again changes anything (no ping-pong between them).
    for binding, secret in pair.values():
        assert f.servicebinding_projection(both, binding, secret)["changed"] is False
    if again is not None:
        # One of them leaves and comes back: the two are stable again, and still leave cleanly.
        binding, secret = pair[again]
        both = bind(bind(both, binding, None), binding, secret)
        for other, other_secret in pair.values():
            assert f.servicebinding_projection(both, other, other_secret)["changed"] is False
    first, last = (pair[name][0] for name in order)
    one_left = bind(both, first, None)
    if again is None:
        # What the one left has is what it would have had alone.
        alone = bind(workload, last, pair[order[1]][1])
        assert without_version(one_left)["spec"] == without_version(alone)["spec"]
    assert without_version(bind(one_left, last, None)) == without_version(workload)


@SETTINGS
@given(workload=workloads(), binding=bindings(), secret=st.sampled_from(SECRETS))
def test_the_patch_turns_the_read_workload_into_the_projected_one(workload: dict[str, Any], binding: dict[str, Any],
                                                                  secret: str) -> None:
    jsonpatch = pytest.importorskip("jsonpatch")
    result = f.servicebinding_projection(workload, binding, secret)
    assert jsonpatch.apply_patch(workload, result["patch"]) == result["workload"]
    bound = sb.applied(workload, result)
    back = f.servicebinding_projection(bound, binding, None)
    assert jsonpatch.apply_patch(bound, back["patch"]) == back["workload"]


# --- known failures -----------------------------------------------------------------------
# Unproject tells the binding's variables from the workload's own by name and Secret only, and
# keeps a SERVICE_BINDING_ROOT it added while any mount lies under it, its own or not.

MINIMAL_CLASH = sb.deployment(containers=[{"name": "app", "env": [
    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]}])


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "a variable of the workload's own with the name of one of the binding's env variables and a "
    "secretKeyRef to the binding's Secret (whatever its key) is taken for the binding's: the next "
    "reconcile drops it, and unbinding removes it"))
@SETTINGS
@example(workload=MINIMAL_CLASH, binding=sb.binding(env=[{"name": "A", "key": "a"}]), secret="creds",
         key="password")
@given(workload=workloads(), binding=bindings(), secret=st.sampled_from(SECRETS),
       key=st.sampled_from(["a", "password"]))
def test_a_variable_of_the_workloads_own_named_like_a_bindings_survives_it(
        workload: dict[str, Any], binding: dict[str, Any], secret: str, key: str) -> None:
    workload, binding = copy.deepcopy(workload), copy.deepcopy(binding)
    spec = binding["spec"]
    spec.setdefault("workload", {}).pop("containers", None)
    if not spec.get("env"):
        spec["env"] = [{"name": "A", "key": "a"}]
    own = {"name": spec["env"][0]["name"], "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
    container = workload["spec"]["template"]["spec"]["containers"][0]
    if own not in container.get("env", []):
        container.setdefault("env", []).insert(0, own)
    bound = bind(workload, binding, secret)
    assert f.servicebinding_projection(bound, binding, secret)["changed"] is False
    assert without_version(bind(bound, binding, None)) == without_version(workload)


MINIMAL_MOUNT = sb.deployment(containers=[{"name": "app", "volumeMounts": [CLASHING_MOUNT]}])


@SETTINGS
@example(workload=MINIMAL_MOUNT, binding=sb.binding(), secret="creds")
@given(workload=workloads(), binding=bindings(), secret=st.sampled_from(SECRETS))
def test_a_mount_of_the_workloads_own_under_the_default_root_does_not_keep_it(
        workload: dict[str, Any], binding: dict[str, Any], secret: str) -> None:
    workload, binding = copy.deepcopy(workload), copy.deepcopy(binding)
    binding["spec"].setdefault("workload", {}).pop("containers", None)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env = [e for e in container.pop("env", []) if e["name"] != ROOT]
    if env:
        container["env"] = env
    container.setdefault("volumeMounts", []).append(copy.deepcopy(CLASHING_MOUNT))
    bound = bind(workload, binding, secret)
    assert without_version(bind(bound, binding, None)) == without_version(workload)
