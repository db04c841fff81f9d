"""Loading and validating watches.yaml."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from runner.watches import (
    DEFAULT_RECONCILE_PERIOD,
    Finalizer,
    GroupVersionKind,
    Watch,
    WatchDefaults,
    WatchesError,
    env_suffix,
    expand_env,
    load_watches,
    parse_go_int,
    parse_watches,
    resolve_playbook,
    resolve_role,
    role_candidates,
)

DEFAULTS = WatchDefaults(max_concurrent_reconciles=3, ansible_verbosity=2)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An operator project: two roles, two playbooks."""
    (tmp_path / "roles" / "memcached" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "cleanup" / "tasks").mkdir(parents=True)
    (tmp_path / "site.yml").write_text("- hosts: localhost\n")
    (tmp_path / "finalize.yml").write_text("- hosts: localhost\n")
    return tmp_path


def load(project: Path, text: str, *, env: dict[str, str] | None = None,
         defaults: WatchDefaults = DEFAULTS) -> list[Watch]:
    path = project / "watches.yaml"
    path.write_text(textwrap.dedent(text))
    return load_watches(path, env=env if env is not None else {}, defaults=defaults, base_dir=project)


def load_one(project: Path, text: str, **kwargs: object) -> Watch:
    watches = load(project, text, **kwargs)  # type: ignore[arg-type]
    assert len(watches) == 1
    return watches[0]


def load_error(project: Path, text: str, *, env: dict[str, str] | None = None) -> WatchesError:
    with pytest.raises(WatchesError) as caught:
        load(project, text, env=env)
    return caught.value


MEMCACHED = """\
- version: v1alpha1
  group: cache.example.com
  kind: Memcached
  role: memcached
"""


# --- defaults and field values -----------------------------------------------------------------------


def test_minimal_entry_gets_the_sdk_defaults(project: Path) -> None:
    watch = load_one(project, MEMCACHED)
    assert watch.gvk == GroupVersionKind("cache.example.com", "v1alpha1", "Memcached")
    assert watch.role == project / "roles" / "memcached"
    assert watch.playbook is None
    assert watch.vars == {}
    assert watch.reconcile_period == DEFAULT_RECONCILE_PERIOD == 36000.0
    assert watch.manage_status is True
    assert watch.watch_dependent_resources is True
    assert watch.watch_cluster_scoped_resources is False
    assert watch.max_runner_artifacts == 20
    assert watch.finalizer is None
    assert watch.blacklist == ()
    assert watch.selector.empty
    assert watch.snake_case_parameters is True
    assert watch.mark_unsafe is False
    assert watch.watch_annotations_changes is False
    assert watch.max_concurrent_reconciles == 3
    assert watch.ansible_verbosity == 2


def test_every_field_is_read(project: Path) -> None:
    watch = load_one(project, """\
        - version: v1alpha1
          group: cache.example.com
          kind: Memcached
          playbook: site.yml
          vars: {sentinel: reconciling, nested: {a: [1, 2]}}
          reconcilePeriod: 1m30s
          manageStatus: false
          watchDependentResources: false
          watchClusterScopedResources: true
          maxRunnerArtifacts: 5
          finalizer:
            name: cache.example.com/finalizer
            role: cleanup
            vars: {state: absent}
          blacklist:
            - {group: apps, version: v1, kind: Deployment}
            - {version: v1, kind: ConfigMap}
          selector:
            matchLabels: {tier: cache}
          snakeCaseParameters: false
          markUnsafe: true
          watchAnnotationsChanges: true
          maxConcurrentReconciles: 6
          ansibleVerbosity: 4
        """)
    assert watch.playbook == project / "site.yml"
    assert watch.role is None
    assert watch.vars == {"sentinel": "reconciling", "nested": {"a": [1, 2]}}
    assert watch.reconcile_period == 90.0
    assert watch.manage_status is False
    assert watch.watch_dependent_resources is False
    assert watch.watch_cluster_scoped_resources is True
    assert watch.max_runner_artifacts == 5
    assert watch.finalizer == Finalizer(name="cache.example.com/finalizer",
                                        role=project / "roles" / "cleanup", vars={"state": "absent"})
    assert watch.blacklist == (GroupVersionKind("apps", "v1", "Deployment"),
                               GroupVersionKind("", "v1", "ConfigMap"))
    assert watch.selector.match_labels == {"tier": "cache"}
    assert watch.snake_case_parameters is False
    assert watch.mark_unsafe is True
    assert watch.watch_annotations_changes is True
    assert watch.max_concurrent_reconciles == 6
    assert watch.ansible_verbosity == 4


def test_entries_keep_file_order_and_core_group_is_empty(project: Path) -> None:
    watches = load(project, MEMCACHED + "- {version: v1, kind: ConfigMap, playbook: site.yml}\n")
    assert [w.kind for w in watches] == ["Memcached", "ConfigMap"]
    core = watches[1]
    assert core.group == ""
    assert core.api_version == "v1"
    assert str(core.gvk) == "v1 ConfigMap"
    assert watches[0].api_version == "cache.example.com/v1alpha1"


def test_yaml_11_booleans_are_booleans(project: Path) -> None:
    watch = load_one(project, MEMCACHED + "  manageStatus: no\n  markUnsafe: True\n")
    assert watch.manage_status is False
    assert watch.mark_unsafe is True


# --- reconcilePeriod ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10.0), ("1m30s", 90.0), ("1h", 3600.0), ("1.5h", 5400.0), ("300ms", 0.3), ("2h45m", 9900.0),
])
def test_reconcile_period_is_a_go_duration(project: Path, text: str, seconds: float) -> None:
    watch = load_one(project, MEMCACHED + f"  reconcilePeriod: {text}\n")
    assert watch.reconcile_period == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0s", "'0'", "0m0s"])
def test_zero_reconcile_period_means_the_operator_default(project: Path, text: str) -> None:
    defaults = WatchDefaults(max_concurrent_reconciles=1, reconcile_period="30m")
    watch = load_one(project, MEMCACHED + f"  reconcilePeriod: {text}\n", defaults=defaults)
    assert watch.reconcile_period == 1800.0


def test_operator_default_reconcile_period_may_be_seconds_or_zero(project: Path) -> None:
    assert load_one(project, MEMCACHED, defaults=WatchDefaults(reconcile_period=45)).reconcile_period == 45.0
    assert load_one(project, MEMCACHED, defaults=WatchDefaults(reconcile_period="0s")).reconcile_period == 0.0


def test_invalid_reconcile_period_names_entry_and_field(project: Path) -> None:
    err = load_error(project, MEMCACHED + textwrap.dedent("""\
        - version: v1alpha1
          group: cache.example.com
          kind: Other
          role: memcached
          reconcilePeriod: 5 minutes
        """))
    assert str(err).startswith(
        f'{project / "watches.yaml"} entry 2 (cache.example.com/v1alpha1 Other): '
        'field "reconcilePeriod": invalid duration "5 minutes"')
    assert (err.entry, err.field, err.gvk) == (2, "reconcilePeriod", "cache.example.com/v1alpha1 Other")


@pytest.mark.parametrize("value", ["30", "0", "-5m", "[1m]"])
def test_reconcile_period_must_be_a_non_negative_duration_string(project: Path, value: str) -> None:
    err = load_error(project, MEMCACHED + f"  reconcilePeriod: {value}\n")
    assert err.field == "reconcilePeriod"


@pytest.mark.parametrize(("text", "number"), [
    ("0", 0), ("-1", -1), ("+5", 5), ("007", 7), (" 5", None), ("5 ", None), ("1_0", None), ("3.0", None),
    ("", None), ("abc", None), ("\u0661", None),
])
def test_parse_go_int(text: str, number: int | None) -> None:
    assert parse_go_int(text) == number


# --- integers and booleans ---------------------------------------------------------------------------


def test_zero_max_runner_artifacts_means_the_default(project: Path) -> None:
    assert load_one(project, MEMCACHED + "  maxRunnerArtifacts: 0\n").max_runner_artifacts == 20


@pytest.mark.parametrize(("line", "field", "fragment"), [
    ("maxRunnerArtifacts: -1", "maxRunnerArtifacts", "must be >= 0"),
    ("maxRunnerArtifacts: '5'", "maxRunnerArtifacts", "must be an integer"),
    ("maxRunnerArtifacts: true", "maxRunnerArtifacts", "must be an integer"),
    ("maxConcurrentReconciles: 0", "maxConcurrentReconciles", "must be >= 1"),
    ("ansibleVerbosity: 8", "ansibleVerbosity", "from 0 to 7"),
    ("ansibleVerbosity: -1", "ansibleVerbosity", "from 0 to 7"),
    ("manageStatus: 'yes please'", "manageStatus", "must be true or false"),
    ("watchDependentResources: 1", "watchDependentResources", "must be true or false"),
    ("vars: [a, b]", "vars", "must be a mapping"),
    ("vars: {1: a}", "vars", "keys must be strings"),
])
def test_wrong_types_and_ranges_are_errors(project: Path, line: str, field: str, fragment: str) -> None:
    err = load_error(project, MEMCACHED + f"  {line}\n")
    assert err.field == field
    assert fragment in str(err)
    assert f'field "{field}"' in str(err)


@pytest.mark.parametrize(("entry", "field"), [
    ("{group: g.io, kind: A, role: memcached}", "version"),
    ("{group: g.io, version: v1, role: memcached}", "kind"),
    ("{group: g.io, version: '', kind: A, role: memcached}", "version"),
    ("{group: g.io, version: 1, kind: A, role: memcached}", "version"),
    ("{group: 7, version: v1, kind: A, role: memcached}", "group"),
])
def test_version_and_kind_are_required_strings(project: Path, entry: str, field: str) -> None:
    assert load_error(project, f"- {entry}\n").field == field


# --- role and playbook -------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "field", "fragment"), [
    ("{version: v1, kind: A}", "role", "one of role or playbook is required"),
    ("{version: v1, kind: A, role: memcached, playbook: site.yml}", "role", "mutually exclusive"),
    ("{version: v1, kind: A, role: missing}", "role", "role 'missing' not found"),
    ("{version: v1, kind: A, playbook: missing.yml}", "playbook", "playbook 'missing.yml' not found"),
    ("{version: v1, kind: A, playbook: roles}", "playbook", "not found"),
])
def test_role_or_playbook_must_exist(project: Path, entry: str, field: str, fragment: str) -> None:
    err = load_error(project, f"- {entry}\n")
    assert err.field == field
    assert fragment in str(err)


def test_missing_role_error_lists_where_it_looked(project: Path) -> None:
    err = load_error(project, "- {version: v1, kind: A, role: missing}\n",
                     env={"ANSIBLE_ROLES_PATH": "/opt/r"})
    assert "/opt/r/missing, /opt/r/roles/missing" in str(err)
    assert str(project / "roles" / "missing") in str(err)


def test_absolute_playbook_is_used_as_given(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "play.yml"
    elsewhere.write_text("[]\n")
    watch = load_one(project, f"- {{version: v1, kind: A, playbook: {elsewhere}}}\n")
    assert watch.playbook == elsewhere


def test_resolve_playbook_is_relative_to_base_dir(tmp_path: Path) -> None:
    assert resolve_playbook("plays/site.yml", base_dir=tmp_path) == tmp_path / "plays" / "site.yml"
    assert resolve_playbook("../x.yml", base_dir=tmp_path / "a") == tmp_path / "x.yml"
    assert resolve_playbook("/abs/site.yml", base_dir=tmp_path) == Path("/abs/site.yml")


def test_role_candidates_follow_the_sdk_search_order(tmp_path: Path) -> None:
    env = {"ANSIBLE_COLLECTIONS_PATH": "/c1:/c2", "ANSIBLE_ROLES_PATH": "/r1::rel", "HOME": "/home/op"}
    assert role_candidates("ns.coll.web", base_dir=tmp_path, env=env) == [
        Path("/c1/ansible_collections/ns/coll/roles/web"),
        Path("/c2/ansible_collections/ns/coll/roles/web"),
        Path("/r1/ns.coll.web"),
        Path("/r1/roles/ns.coll.web"),
        tmp_path / "rel" / "ns.coll.web",
        tmp_path / "rel" / "roles" / "ns.coll.web",
        tmp_path / "roles" / "ns.coll.web",
        tmp_path / "ns.coll.web",
    ]


def test_collection_search_defaults_to_system_then_home(tmp_path: Path) -> None:
    candidates = role_candidates("ns.coll.web", base_dir=tmp_path, env={"HOME": "/home/op"})
    assert candidates[:2] == [
        Path("/usr/share/ansible/collections/ansible_collections/ns/coll/roles/web"),
        Path("/home/op/.ansible/collections/ansible_collections/ns/coll/roles/web"),
    ]
    without_home = role_candidates("ns.coll.web", base_dir=tmp_path, env={"ANSIBLE_COLLECTIONS_PATH": ""})
    assert without_home[0] == Path("/usr/share/ansible/collections/ansible_collections/ns/coll/roles/web")
    assert without_home[1] == tmp_path / "roles" / "ns.coll.web"


@pytest.mark.parametrize("role", ["web", "two.parts", "a.b.c.d", "../x.y", "ns..web"])
def test_only_three_part_names_are_collection_roles(tmp_path: Path, role: str) -> None:
    candidates = role_candidates(role, base_dir=tmp_path, env={"HOME": "/home/op"})
    assert not any("ansible_collections" in str(path) for path in candidates)


def test_absolute_role_is_the_only_candidate(tmp_path: Path) -> None:
    assert role_candidates("/opt/roles/web/", base_dir=tmp_path, env={"ANSIBLE_ROLES_PATH": "/r"}) == [
        Path("/opt/roles/web")]


def test_resolve_role_takes_the_first_directory_found(tmp_path: Path) -> None:
    search = tmp_path / "search"
    (search / "web").mkdir(parents=True)
    (tmp_path / "roles" / "web").mkdir(parents=True)
    env = {"ANSIBLE_ROLES_PATH": str(search)}
    assert resolve_role("web", base_dir=tmp_path, env=env) == search / "web"
    assert resolve_role("web", base_dir=tmp_path, env={}) == tmp_path / "roles" / "web"


def test_resolve_role_finds_roles_under_a_search_dirs_roles_folder(tmp_path: Path) -> None:
    (tmp_path / "search" / "roles" / "web").mkdir(parents=True)
    env = {"ANSIBLE_ROLES_PATH": str(tmp_path / "search")}
    found = resolve_role("web", base_dir=tmp_path / "elsewhere", env=env)
    assert found == tmp_path / "search" / "roles" / "web"


def test_resolve_role_falls_back_to_base_dir_and_skips_files(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles" / "web").write_text("not a role")
    (tmp_path / "web").mkdir()
    assert resolve_role("web", base_dir=tmp_path, env={}) == tmp_path / "web"
    assert resolve_role("absent", base_dir=tmp_path, env={}) is None


def test_collection_role_is_found_through_the_environment(project: Path) -> None:
    collections = project / "collections"
    role_dir = collections / "ansible_collections" / "nameSpace" / "collection" / "roles" / "someRole"
    role_dir.mkdir(parents=True)
    text = "- {version: v1, group: app.example.com, kind: A, role: nameSpace.collection.someRole}\n"
    watch = load_one(project, text, env={"ANSIBLE_COLLECTIONS_PATH": f"/nowhere:{collections}"})
    assert watch.role == role_dir
    err = load_error(project, text, env={"HOME": str(project / "home")})
    assert err.field == "role"
    assert "nameSpace.collection.someRole" in str(err)


# --- finalizer ---------------------------------------------------------------------------------------


def test_finalizer_with_playbook_or_vars_only(project: Path) -> None:
    watches = load(project, """\
        - version: v1
          group: app.example.com
          kind: WithPlaybook
          role: memcached
          finalizer: {name: app.example.com/finalizer, playbook: finalize.yml}
        - version: v1
          group: app.example.com
          kind: VarsOnly
          role: memcached
          finalizer:
            name: app.example.com/finalizer
            vars: {sentinel: finalizer_running}
        - version: v1
          group: app.example.com
          kind: KeepsWhileRequeued
          role: memcached
          finalizer: {name: app.example.com/finalizer, vars: {a: 1}, keepWhileRequeued: true}
        - version: v1
          group: app.example.com
          kind: NoFinalizer
          role: memcached
          finalizer: null
        """)
    assert watches[0].finalizer == Finalizer("app.example.com/finalizer", playbook=project / "finalize.yml")
    assert watches[1].finalizer == Finalizer("app.example.com/finalizer",
                                             vars={"sentinel": "finalizer_running"})
    assert not watches[1].finalizer.keep_while_requeued
    assert watches[2].finalizer == Finalizer("app.example.com/finalizer", vars={"a": 1},
                                             keep_while_requeued=True)
    assert watches[3].finalizer is None


@pytest.mark.parametrize(("finalizer", "field", "fragment"), [
    ("{role: cleanup}", "finalizer.name", "is required"),
    ("{name: null, vars: {a: 1}}", "finalizer.name", "is required"),
    ("{name: 'Not Valid', vars: {a: 1}}", "finalizer.name", "not a valid finalizer name"),
    ("{name: Bad_Prefix/fin, vars: {a: 1}}", "finalizer.name", "DNS subdomain"),
    ("{name: app.example.com/finalizer}", "finalizer", "needs a role, a playbook or vars"),
    ("{name: app.example.com/finalizer, vars: {}}", "finalizer", "needs a role, a playbook or vars"),
    ("{name: app.example.com/finalizer, role: cleanup, playbook: finalize.yml}", "finalizer.role",
     "mutually exclusive"),
    ("{name: app.example.com/finalizer, role: ansible/role, vars: {a: 1}}", "finalizer.role", "not found"),
    ("{name: app.example.com/finalizer, playbook: nope.yml, vars: {a: 1}}", "finalizer.playbook",
     "not found"),
    ("{name: app.example.com/finalizer, vars: {a: 1}, when: always}", "finalizer.when", "unknown field"),
    ("[app.example.com/finalizer]", "finalizer", "must be a mapping"),
    ("{name: app.example.com/finalizer, vars: [a]}", "finalizer.vars", "must be a mapping"),
    ("{name: app.example.com/finalizer, vars: {a: 1}, keepWhileRequeued: 'yes'}", "finalizer.keepWhileRequeued",
     "must be true or false"),
])
def test_invalid_finalizers(project: Path, finalizer: str, field: str, fragment: str) -> None:
    err = load_error(project, MEMCACHED + f"  finalizer: {finalizer}\n")
    assert err.field == field
    assert fragment in str(err)


# --- blacklist ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("blacklist", "field"), [
    ("{group: apps, version: v1, kind: Deployment}", "blacklist"),
    ("[{group: apps, version: v1}]", "blacklist[0].kind"),
    ("[{version: v1, kind: A}, {group: apps, kind: B}]", "blacklist[1].version"),
    ("[{version: v1, kind: A, plural: as}]", "blacklist[0].plural"),
    ("[apps/v1/Deployment]", "blacklist[0]"),
])
def test_invalid_blacklists(project: Path, blacklist: str, field: str) -> None:
    assert load_error(project, MEMCACHED + f"  blacklist: {blacklist}\n").field == field


# --- selector ----------------------------------------------------------------------------------------


def test_selector_renders_like_kubernetes(project: Path) -> None:
    watch = load_one(project, MEMCACHED + textwrap.indent(textwrap.dedent("""\
        selector:
          matchLabels: {a: b}
          matchExpressions:
            - {key: f, operator: DoesNotExist}
            - {key: c, operator: In, values: [e, d]}
        """), "  "))
    assert watch.selector.to_selector_string() == "a=b,c in (d,e),!f"
    assert str(watch.selector) == "a=b,c in (d,e),!f"


def test_watch_selects_objects_by_their_labels(project: Path) -> None:
    watch = load_one(project, MEMCACHED + "  selector: {matchLabels: {tier: cache}}\n")
    assert watch.selects({"metadata": {"labels": {"tier": "cache", "x": "y"}}})
    assert not watch.selects({"metadata": {"labels": {"tier": "web"}}})
    assert not watch.selects({"metadata": {}})
    assert load_one(project, MEMCACHED).selects({"metadata": {}})


@pytest.mark.parametrize(("selector", "field", "fragment"), [
    ("{matchLabels: {tier: 1}}", "selector.matchLabels.tier", "must be a string"),
    ("{matchLabels: {tier: 'has space'}}", "selector.matchLabels.tier", "invalid label value"),
    ("{matchLabels: {'bad key!': x}}", "selector.matchLabels.bad key!", "invalid label key"),
    ("{matchLabels: [tier]}", "selector.matchLabels", "must be a mapping"),
    ("{matchExpressions: [{key: a, operator: in, values: [b]}]}", "selector.matchExpressions[0].operator",
     "must be one of In, NotIn, Exists, DoesNotExist"),
    ("{matchExpressions: [{key: a, operator: In}]}", "selector.matchExpressions[0].values",
     "must not be empty for operator In"),
    ("{matchExpressions: [{key: a, operator: Exists, values: [b]}]}", "selector.matchExpressions[0].values",
     "must be empty for operator Exists"),
    ("{matchExpressions: [{operator: Exists}]}", "selector.matchExpressions[0].key", "is required"),
    ("{matchExpressions: [{key: a, operator: NotIn, values: [1]}]}", "selector.matchExpressions[0].values",
     "must be a list of strings"),
    ("{matchExpressions: {key: a}}", "selector.matchExpressions", "must be a list"),
    ("{matchLabel: {a: b}}", "selector.matchLabel", "did you mean 'matchLabels'?"),
])
def test_invalid_selectors(project: Path, selector: str, field: str, fragment: str) -> None:
    err = load_error(project, MEMCACHED + f"  selector: {selector}\n")
    assert err.field == field
    assert fragment in str(err)


# --- unknown keys, duplicates, file shape ------------------------------------------------------------


@pytest.mark.parametrize(("key", "hint"), [
    ("reconcileperiod", "did you mean 'reconcilePeriod'?"),
    ("manageStatuss", "did you mean 'manageStatus'?"),
    ("maxWorkers", "known fields: group, version, kind"),
])
def test_unknown_fields_are_errors_with_a_hint(project: Path, key: str, hint: str) -> None:
    err = load_error(project, MEMCACHED + f"  {key}: 5\n")
    assert err.field == key
    assert "unknown field" in str(err)
    assert hint in str(err)
    assert "(cache.example.com/v1alpha1 Memcached)" in str(err)


def test_duplicate_gvk_is_an_error(project: Path) -> None:
    err = load_error(project, MEMCACHED + MEMCACHED)
    assert err.entry == 2
    assert "duplicate group/version/kind, already watched by entry 1" in str(err)


def test_same_kind_in_another_version_is_allowed(project: Path) -> None:
    watches = load(project, MEMCACHED + MEMCACHED.replace("v1alpha1", "v1beta1"))
    assert [w.version for w in watches] == ["v1alpha1", "v1beta1"]
    assert len({*watches}) == 2


def test_duplicate_yaml_key_is_an_error(project: Path) -> None:
    err = load_error(project, MEMCACHED + "  role: cleanup\n")
    assert "duplicate key 'role'" in str(err)
    assert "watches.yaml" in str(err)


def test_yaml_merge_keys_are_not_duplicates(project: Path) -> None:
    watches = load(project, """\
        - &base
          version: v1
          group: app.example.com
          kind: A
          role: memcached
        - <<: *base
          kind: B
        """)
    assert [w.kind for w in watches] == ["A", "B"]
    assert watches[1].role == project / "roles" / "memcached"


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "has no entries"),
    ("# nothing\n", "has no entries"),
    ("[]\n", "has no entries"),
    ("version: v1\nkind: A\n", "must be a list of watches, got a mapping"),
    ("- just a string\n", "entry 1: must be a mapping, got a string"),
    ("- version: v1\n   kind: A\n  bad: [\n", "not valid YAML"),
])
def test_file_shape_errors(project: Path, text: str, fragment: str) -> None:
    assert fragment in str(load_error(project, text))


def test_missing_file_is_a_watches_error(tmp_path: Path) -> None:
    with pytest.raises(WatchesError, match="cannot read the watches file") as caught:
        load_watches(tmp_path / "absent.yaml", env={}, base_dir=tmp_path)
    assert caught.value.source == str(tmp_path / "absent.yaml")


def test_parse_watches_reads_text_directly(project: Path) -> None:
    watches = parse_watches(MEMCACHED, env={}, defaults=DEFAULTS, base_dir=project)
    assert watches[0].role == project / "roles" / "memcached"
    with pytest.raises(WatchesError, match=r"^inline entry 1 \(cache.example.com/v1alpha1 Memcached\)"):
        parse_watches(MEMCACHED + "  bogus: 1\n", source="inline", env={}, base_dir=project)


# --- environment variables ---------------------------------------------------------------------------


def test_env_references_are_expanded_anywhere_in_the_file(project: Path) -> None:
    watch = load_one(project, """\
        - version: "${WATCH_VERSION}"
          group: app.example.com
          kind: A
          playbook: ${PLAYBOOK}
          maxRunnerArtifacts: $ARTIFACTS
          selector:
            matchLabels:
              ${LABEL_KEY}: "${LABEL_VALUE}"
            matchExpressions:
              - {key: ${EXPR_KEY}, operator: In, values: [a, b]}
        """, env={"WATCH_VERSION": "v123", "PLAYBOOK": str(project / "site.yml"), "ARTIFACTS": "7",
                  "LABEL_KEY": "label123", "LABEL_VALUE": "value123", "EXPR_KEY": "key123"})
    assert watch.version == "v123"
    assert watch.playbook == project / "site.yml"
    assert watch.max_runner_artifacts == 7
    assert watch.selector.match_labels == {"label123": "value123"}
    assert watch.selector.match_expressions[0].key == "key123"


def test_unset_env_references_are_left_as_written(project: Path) -> None:
    watch = load_one(project, MEMCACHED + "  vars: {a: '${UNSET_ONE}', b: $UNSET_TWO, c: '{{ x }}$'}\n")
    assert watch.vars == {"a": "${UNSET_ONE}", "b": "$UNSET_TWO", "c": "{{ x }}$"}


@pytest.mark.parametrize(("text", "expanded"), [
    ("a $FOO b", "a foo b"),
    ("${FOO}/x", "foo/x"),
    ("$FOO$BAR", "foobar"),
    ("$FOOx", "$FOOx"),
    ("${FOO}x", "foox"),
    ("x$FOO.y", "xfoo.y"),
    ("$", "$"),
    ("a$", "a$"),
    ("$$", "$$"),
    ("$1", "$1"),
    ("${}", "${}"),
    ("${FOO", "${FOO"),
    ("$ FOO", "$ FOO"),
    ("${FOO:-d}", "${FOO:-d}"),
    ("${WEIRD.NAME}", "dotted"),
    ("^foo$", "^foo$"),
    ("\u00e9$FOO", "\u00e9foo"),
    ("$EMPTY|", "|"),
])
def test_expand_env(text: str, expanded: str) -> None:
    env = {"FOO": "foo", "BAR": "bar", "WEIRD.NAME": "dotted", "EMPTY": ""}
    assert expand_env(text, env) == expanded


@pytest.mark.parametrize(("group", "kind", "suffix"), [
    ("cache.example.com", "Memcached", "MEMCACHED_CACHE_EXAMPLE_COM"),
    ("cache.example.com", "MemCacheService", "MEMCACHESERVICE_CACHE_EXAMPLE_COM"),
    ("my-group.example.com", "Thing", "THING_MY-GROUP_EXAMPLE_COM"),
    ("", "ConfigMap", "CONFIGMAP_"),
])
def test_env_suffix_uppercases_and_replaces_only_dots(group: str, kind: str, suffix: str) -> None:
    assert env_suffix(group, kind) == suffix
    assert Watch(group=group, version="v1", kind=kind, role=Path("/r")).env_suffix == suffix


@pytest.mark.parametrize(("env", "yaml_value", "expected"), [
    ({}, None, 3),
    ({}, 5, 5),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": "4"}, 5, 4),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": "4"}, None, 4),
    ({"WORKER_MEMCACHED_CACHE_EXAMPLE_COM": "6"}, None, 6),
    ({"WORKER_MEMCACHED_CACHE_EXAMPLE_COM": "6",
      "MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": "2"}, None, 2),
    # A set but unusable MAX_CONCURRENT_RECONCILES_* does not fall through to WORKER_*.
    ({"WORKER_MEMCACHED_CACHE_EXAMPLE_COM": "6",
      "MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": "x"}, None, 3),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": "0"}, 5, 5),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": "-2"}, None, 3),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE_EXAMPLE_COM": " 4"}, None, 3),
    ({"MAX_CONCURRENT_RECONCILES_OTHER_CACHE_EXAMPLE_COM": "9"}, None, 3),
    ({"MAX_CONCURRENT_RECONCILES_MEMCACHED_CACHE.EXAMPLE.COM": "9"}, None, 3),
])
def test_max_concurrent_reconciles_precedence(project: Path, env: dict[str, str], yaml_value: int | None,
                                              expected: int) -> None:
    text = MEMCACHED + (f"  maxConcurrentReconciles: {yaml_value}\n" if yaml_value is not None else "")
    assert load_one(project, text, env=env).max_concurrent_reconciles == expected


@pytest.mark.parametrize(("env_value", "yaml_value", "expected"), [
    (None, None, 2),
    (None, 0, 0),
    (None, 6, 6),
    ("4", 6, 4),
    ("0", None, 0),
    ("7", None, 7),
    ("8", 1, 1),
    ("-1", None, 2),
    ("lots", None, 2),
])
def test_ansible_verbosity_precedence(project: Path, env_value: str | None, yaml_value: int | None,
                                      expected: int) -> None:
    env = {} if env_value is None else {"ANSIBLE_VERBOSITY_MEMCACHED_CACHE_EXAMPLE_COM": env_value}
    text = MEMCACHED + (f"  ansibleVerbosity: {yaml_value}\n" if yaml_value is not None else "")
    assert load_one(project, text, env=env).ansible_verbosity == expected


def test_unusable_env_override_is_logged(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    load(project, MEMCACHED, env={"ANSIBLE_VERBOSITY_MEMCACHED_CACHE_EXAMPLE_COM": "9"})
    assert "ANSIBLE_VERBOSITY_MEMCACHED_CACHE_EXAMPLE_COM" in caplog.text


def test_operator_defaults_apply(project: Path) -> None:
    defaults = WatchDefaults(max_concurrent_reconciles=9, ansible_verbosity=0)
    watch = load_one(project, MEMCACHED, defaults=defaults)
    assert (watch.max_concurrent_reconciles, watch.ansible_verbosity) == (9, 0)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"max_concurrent_reconciles": 0}, "default max concurrent reconciles: must be an integer >= 1"),
    ({"ansible_verbosity": 8}, "default ansible verbosity: must be an integer from 0 to 7"),
    ({"reconcile_period": "soon"}, "default reconcile period: invalid duration 'soon'"),
    ({"reconcile_period": -1}, "default reconcile period: must not be negative"),
])
def test_invalid_operator_defaults(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(WatchesError) as caught:
        WatchDefaults(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


# --- the Watch value ---------------------------------------------------------------------------------


def test_watch_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one of role or playbook"):
        Watch(group="g", version="v1", kind="K")
    with pytest.raises(ValueError, match="exactly one of role or playbook"):
        Watch(group="g", version="v1", kind="K", role=Path("/r"), playbook=Path("/p.yml"))


def test_watch_is_frozen_and_hashes_by_gvk() -> None:
    watch = Watch(group="g", version="v1", kind="K", role=Path("/r"), vars={"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        watch.kind = "Other"  # type: ignore[misc]
    same_gvk = Watch(group="g", version="v1", kind="K", playbook=Path("/p.yml"))
    assert hash(watch) == hash(same_gvk)
    assert watch != same_gvk
    assert {watch: 1}[Watch(group="g", version="v1", kind="K", role=Path("/r"), vars={"a": 1})] == 1
