"""Extra vars for a run, snake_case conversion and per-object annotation overrides."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from runner.extravars import (
    MAX_RUNNER_ARTIFACTS_ANNOTATION,
    RECONCILE_PERIOD_ANNOTATION,
    VERBOSITY_ANNOTATION,
    Overrides,
    build_extra_vars,
    mark_unsafe,
    object_overrides,
    object_var_name,
    snake_case_keys,
    to_snake_case,
)
from runner.watches import Finalizer, Watch


def make_watch(**changes: Any) -> Watch:
    fields: dict[str, Any] = {"group": "cache.example.com", "version": "v1alpha1", "kind": "Memcached",
                              "role": Path("/opt/roles/memcached"), "max_concurrent_reconciles": 1}
    fields.update(changes)
    return Watch(**fields)


def memcached(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cache.example.com/v1alpha1",
        "kind": "Memcached",
        "metadata": {"name": "mc", "namespace": "ns1", "labels": {"app": "x"}},
        "spec": spec,
        "status": {"conditions": []},
    }


# --- snake_case --------------------------------------------------------------------------------------

# The Operator SDK's own conversion table, then further cases checked against its implementation.
SDK_TABLE = [
    ("var", "var"),
    ("888", "888"),
    ("k8s_var", "k8s_var"),
    ("_k8s_var", "_k8s_var"),
    ("k8s var", "k8s_var"),
    ("ThisShouldHaveUnderscores", "_this_should_have_underscores"),
    ("sizeK8sBuckets", "size_k8s_buckets"),
    ("_CanYou_Handle_mixedVars", "_can_you_handle_mixed_vars"),
    ("this_should_be_a_noop", "this_should_be_a_noop"),
    ("egressIPs", "egress_ips"),
    ("egressIPsEgress", "egress_ips_egress"),
    ("egressIPsegress", "egress_ips_egress"),
    ("IPsegress", "_ips_egress"),
    ("egressIP", "egress_ip"),
    ("egressIPEgress", "egress_ip_egress"),
    ("egressIPegress", "egress_ip_egress"),
    ("URLegressIPEgressHTTP", "url_egress_ip_egress_http"),
    ("URLsegressIPsEgressHTTPs", "_urls_egress_ips_egress_https"),
]
MORE_CASES = [
    ("replicaCount", "replica_count"),
    ("apiVersion", "api_version"),
    ("podIP", "pod_ip"),
    ("podIPs", "pod_ips"),
    ("serviceURLs", "service_urls"),
    ("imageURL", "image_url"),
    ("tlsHTTPsRedirect", "tls_https_redirect"),
    ("hostIPAndPodIP", "host_ip_and_pod_ip"),
    ("IPandIP", "ip_and_ip"),
    ("httpServer", "http_server"),
    ("HTTPServer", "http_server"),
    ("JSONData", "_json_data"),
    ("myJSONData", "my_json_data"),
    ("MySQLHost", "_my_sql_host"),
    ("ALLCAPS", "_allcaps"),
    ("ALLCAPSx", "_allcap_sx"),
    ("IP", "__ip"),
    ("IPs", "__ips"),
    ("URL", "__url"),
    ("HTTPs", "__https"),
    ("ip", "ip"),
    ("a1b2", "a_1_b2"),
    ("a1b2c3", "a_1_b2c3"),
    ("abc12def34", "abc12def34"),
    ("v1alpha1", "v1alpha1"),
    ("x86_64", "x86_64"),
    ("camelCase123Value", "camel_case123_value"),
    ("value2Go", "value2_go"),
    ("k8sIO", "k8s_io"),
    ("foo-bar", "foo_bar"),
    ("fooBar-bazQux", "foo_bar_baz_qux"),
    ("  spaced Out  ", "spaced_out"),
    ("__double", "__double"),
    ("Trailing_", "_trailing_"),
    ("aB", "ab"),
    ("Ab", "_ab"),
    ("A", "_a"),
    ("_", "_"),
    ("-", "_"),
    ("caf\u00e9Bar", "caf\u00e9_bar"),
]


@pytest.mark.parametrize(("name", "snake"), SDK_TABLE + MORE_CASES)
def test_to_snake_case(name: str, snake: str) -> None:
    assert to_snake_case(name) == snake


@pytest.mark.parametrize("name", ["", "   "])
def test_to_snake_case_of_nothing_is_empty(name: str) -> None:
    assert to_snake_case(name) == ""


def test_snake_case_keys_converts_keys_at_every_depth_and_leaves_values() -> None:
    spec = {
        "var": "value",
        "var_var": "value",
        "size_k8s_test": "value",
        "888": "value",
        "nestedMap": {"innerKey": {"deepKey": "camelValue"}, "listOfMaps": [{"aB": 1}, "someString", ["xY"]]},
        "emptyList": [],
    }
    assert snake_case_keys(spec) == {
        "var": "value",
        "var_var": "value",
        "size_k8s_test": "value",
        "888": "value",
        "nested_map": {"inner_key": {"deep_key": "camelValue"},
                       "list_of_maps": [{"ab": 1}, "someString", ["xY"]]},
        "empty_list": [],
    }


def test_snake_case_keys_copies_and_keeps_scalars() -> None:
    spec = {"someList": [{"innerKey": 1}]}
    converted = snake_case_keys(spec)
    converted["some_list"][0]["inner_key"] = 2
    assert spec == {"someList": [{"innerKey": 1}]}
    assert snake_case_keys(5) == 5
    assert snake_case_keys(None) is None
    assert snake_case_keys({1: "a"}) == {1: "a"}


# --- extra vars --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("group", "kind", "name"), [
    ("cache.example.com", "Memcached", "_cache_example_com_memcached"),
    ("cert-manager.io", "Certificate", "_cert_manager_io_certificate"),
    ("", "ConfigMap", "__configmap"),
    ("Example.COM", "FooBar", "_Example_COM_foobar"),
])
def test_object_var_name(group: str, kind: str, name: str) -> None:
    assert object_var_name(group, kind) == name


def test_extra_vars_for_a_custom_resource() -> None:
    watch = make_watch(vars={"sentinel": "reconciling", "size": 99})
    obj = memcached(size=3, sizeK8sBuckets=1, egressIPs=["1.2.3.4"],
                    nestedMap={"innerKey": {"deepKey": "v"}, "listOfMaps": [{"aB": 1}, "str"]})
    raw_spec = copy.deepcopy(obj["spec"])
    assert build_extra_vars(watch, obj) == {
        "size": 99,  # the watch's vars win over the spec
        "size_k8s_buckets": 1,
        "egress_ips": ["1.2.3.4"],
        "nested_map": {"inner_key": {"deep_key": "v"}, "list_of_maps": [{"ab": 1}, "str"]},
        "ansible_operator_meta": {"name": "mc", "namespace": "ns1"},
        "_cache_example_com_memcached": obj,
        "_cache_example_com_memcached_spec": raw_spec,
        "sentinel": "reconciling",
    }


def test_snake_case_parameters_false_keeps_spec_keys() -> None:
    watch = make_watch(group="cert-manager.io", kind="Certificate", snake_case_parameters=False)
    obj = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"},
           "spec": {"dnsNames": ["a.example.com"], "issuerRef": {"name": "i"}}}
    assert build_extra_vars(watch, obj) == {
        "dnsNames": ["a.example.com"],
        "issuerRef": {"name": "i"},
        "ansible_operator_meta": {"name": "c", "namespace": ""},
        "_cert_manager_io_certificate": obj,
        "_cert_manager_io_certificate_spec": {"dnsNames": ["a.example.com"], "issuerRef": {"name": "i"}},
    }


@pytest.mark.parametrize("spec", [None, "not-a-map", ["a"]])
def test_object_without_a_mapping_spec_gets_an_empty_one(spec: Any) -> None:
    watch = make_watch(group="", version="v1", kind="ConfigMap")
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "cm", "namespace": "d"}, "data": {"someKey": "v"}}
    if spec is not None:
        obj["spec"] = spec
    assert build_extra_vars(watch, obj) == {
        "ansible_operator_meta": {"name": "cm", "namespace": "d"},
        "__configmap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "d"},
                        "data": {"someKey": "v"}, "spec": {}},
        "__configmap_spec": {},
    }


def test_generated_vars_win_over_spec_fields_of_the_same_name() -> None:
    obj = memcached(ansible_operator_meta="spoofed", _cache_example_com_memcached="spoofed")
    extra = build_extra_vars(make_watch(snake_case_parameters=False), obj)
    assert extra["ansible_operator_meta"] == {"name": "mc", "namespace": "ns1"}
    assert extra["_cache_example_com_memcached"]["kind"] == "Memcached"


def test_finalizer_vars_apply_only_to_finalizer_runs() -> None:
    watch = make_watch(vars={"sentinel": "reconciling", "keep": 1},
                       finalizer=Finalizer("cache.example.com/finalizer", vars={"sentinel": "finalizing"}))
    obj = memcached(sentinel="from-spec")
    assert build_extra_vars(watch, obj)["sentinel"] == "reconciling"
    finalizing = build_extra_vars(watch, obj, finalizer=True)
    assert finalizing["sentinel"] == "finalizing"
    assert finalizing["keep"] == 1


def test_finalizer_run_needs_a_finalizer() -> None:
    with pytest.raises(ValueError, match="has no finalizer"):
        build_extra_vars(make_watch(), memcached(), finalizer=True)


def test_extra_vars_share_nothing_with_their_inputs() -> None:
    watch = make_watch(vars={"settings": {"a": [1]}}, snake_case_parameters=False)
    obj = memcached(items=[{"name": "x"}])
    before_obj, before_vars = copy.deepcopy(obj), copy.deepcopy(watch.vars)
    extra = build_extra_vars(watch, obj)
    extra["items"][0]["name"] = "changed"
    extra["_cache_example_com_memcached"]["metadata"]["name"] = "changed"
    extra["_cache_example_com_memcached_spec"]["items"].append("more")
    extra["settings"]["a"].append(2)
    assert obj == before_obj
    assert watch.vars == before_vars
    assert extra["_cache_example_com_memcached"]["spec"]["items"] == [{"name": "x"}]


def test_missing_or_odd_metadata_gives_empty_names() -> None:
    extra = build_extra_vars(make_watch(), {"spec": {}, "metadata": {"name": None, "namespace": 5}})
    assert extra["ansible_operator_meta"] == {"name": "", "namespace": ""}
    assert build_extra_vars(make_watch(), {})["ansible_operator_meta"] == {"name": "", "namespace": ""}


def test_mark_unsafe_wraps_strings_in_spec_and_object_but_not_meta_or_vars() -> None:
    watch = make_watch(group="app.example.com", kind="Unsafe", mark_unsafe=True, vars={"plain": "{{ x }}"})
    obj = {"apiVersion": "app.example.com/v1", "kind": "Unsafe",
           "metadata": {"name": "u", "namespace": "ns2", "annotations": {"a": "{{ lookup('pipe','id') }}"}},
           "spec": {"cmdLine": "{{ evil }}", "count": 2, "enabled": True,
                    "items": ["a", 1, None, {"innerKey": "b"}], "none": None}}
    unsafe_spec = {"cmdLine": {"__ansible_unsafe": "{{ evil }}"}, "count": 2, "enabled": True,
                   "items": [{"__ansible_unsafe": "a"}, 1, None, {"innerKey": {"__ansible_unsafe": "b"}}],
                   "none": None}
    assert build_extra_vars(watch, obj) == {
        "cmd_line": {"__ansible_unsafe": "{{ evil }}"},
        "count": 2,
        "enabled": True,
        "items": [{"__ansible_unsafe": "a"}, 1, None, {"inner_key": {"__ansible_unsafe": "b"}}],
        "none": None,
        "ansible_operator_meta": {"name": "u", "namespace": "ns2"},
        "_app_example_com_unsafe": {
            "apiVersion": {"__ansible_unsafe": "app.example.com/v1"},
            "kind": {"__ansible_unsafe": "Unsafe"},
            "metadata": {"name": {"__ansible_unsafe": "u"}, "namespace": {"__ansible_unsafe": "ns2"},
                         "annotations": {"a": {"__ansible_unsafe": "{{ lookup('pipe','id') }}"}}},
            "spec": unsafe_spec,
        },
        "_app_example_com_unsafe_spec": unsafe_spec,
        "plain": "{{ x }}",
    }


def test_mark_unsafe_leaves_keys_and_non_strings() -> None:
    assert mark_unsafe({"k": ["s", 1, 1.5, True, None, ("t",)]}) == {
        "k": [{"__ansible_unsafe": "s"}, 1, 1.5, True, None, [{"__ansible_unsafe": "t"}]]}
    assert mark_unsafe("") == {"__ansible_unsafe": ""}


def test_extra_vars_serialize_to_json() -> None:
    extra = build_extra_vars(make_watch(mark_unsafe=True), memcached(size=3, name="x"))
    assert json.loads(json.dumps(extra)) == extra


# --- annotation overrides ----------------------------------------------------------------------------


def annotated(**annotations: Any) -> dict[str, Any]:
    return {"metadata": {"name": "mc", "annotations": annotations}}


def test_without_annotations_the_watch_settings_apply() -> None:
    watch = make_watch(reconcile_period=60.0, max_runner_artifacts=20, ansible_verbosity=2)
    expected = Overrides(reconcile_period=60.0, max_runner_artifacts=20, verbosity=2, warnings=())
    assert object_overrides(watch, {"metadata": {"name": "mc"}}) == expected
    assert object_overrides(watch, {}) == expected
    assert object_overrides(watch, annotated(unrelated="x")) == expected


def test_valid_annotations_override_the_watch() -> None:
    obj = {"metadata": {"annotations": {
        RECONCILE_PERIOD_ANNOTATION: "1m30s",
        MAX_RUNNER_ARTIFACTS_ANNOTATION: "100",
        VERBOSITY_ANNOTATION: "5",
    }}}
    assert object_overrides(make_watch(), obj) == Overrides(90.0, 100, 5, ())


def test_annotation_names_are_the_sdks() -> None:
    assert RECONCILE_PERIOD_ANNOTATION == "ansible.sdk.operatorframework.io/reconcile-period"
    assert MAX_RUNNER_ARTIFACTS_ANNOTATION == "ansible.sdk.operatorframework.io/max-runner-artifacts"
    assert VERBOSITY_ANNOTATION == "ansible.sdk.operatorframework.io/verbosity"


def test_zero_annotations_turn_things_off() -> None:
    obj = {"metadata": {"annotations": {
        RECONCILE_PERIOD_ANNOTATION: "0s", MAX_RUNNER_ARTIFACTS_ANNOTATION: "0", VERBOSITY_ANNOTATION: "0"}}}
    assert object_overrides(make_watch(ansible_verbosity=3), obj) == Overrides(0.0, 0, 0, ())


@pytest.mark.parametrize(("name", "value"), [
    (RECONCILE_PERIOD_ANNOTATION, "5 minutes"),
    (RECONCILE_PERIOD_ANNOTATION, "30"),
    (RECONCILE_PERIOD_ANNOTATION, "-1m"),
    (RECONCILE_PERIOD_ANNOTATION, ""),
    (MAX_RUNNER_ARTIFACTS_ANNOTATION, "many"),
    (MAX_RUNNER_ARTIFACTS_ANNOTATION, "-1"),
    (MAX_RUNNER_ARTIFACTS_ANNOTATION, " 3"),
    (VERBOSITY_ANNOTATION, "8"),
    (VERBOSITY_ANNOTATION, "-1"),
    (VERBOSITY_ANNOTATION, "vvv"),
    (VERBOSITY_ANNOTATION, 3),
])
def test_invalid_annotations_are_ignored_with_a_warning(name: str, value: Any) -> None:
    watch = make_watch(reconcile_period=60.0, max_runner_artifacts=7, ansible_verbosity=1)
    overrides = object_overrides(watch, annotated(**{name: value}))
    assert (overrides.reconcile_period, overrides.max_runner_artifacts, overrides.verbosity) == (60.0, 7, 1)
    assert len(overrides.warnings) == 1
    assert name in overrides.warnings[0]
    assert repr(value) in overrides.warnings[0]


def test_each_invalid_annotation_gets_its_own_warning_and_valid_ones_still_apply() -> None:
    obj = annotated(**{RECONCILE_PERIOD_ANNOTATION: "soon", MAX_RUNNER_ARTIFACTS_ANNOTATION: "3",
                       VERBOSITY_ANNOTATION: "loud"})
    overrides = object_overrides(make_watch(reconcile_period=10.0), obj)
    assert overrides.reconcile_period == 10.0
    assert overrides.max_runner_artifacts == 3
    assert overrides.verbosity == 2
    assert [w.split("=")[0] for w in overrides.warnings] == [
        f"ignoring annotation {RECONCILE_PERIOD_ANNOTATION}", f"ignoring annotation {VERBOSITY_ANNOTATION}"]
