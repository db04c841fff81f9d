"""Label selectors, written once (playbook_operator.kube's module_utils) for watches.yaml, the
watches of what a run read (runner/dependents.py), the PodSet filters and the ServiceBinding
filters: the object form (metav1.LabelSelector) and the string form (a labelSelector query),
matched and printed as apimachinery does, and every malformed selector the older copies read
differently, each now refused as the apiserver refuses it."""

from __future__ import annotations

from typing import Any

import pytest

from runner import dependents, watches
from runner.basics import selectors

LabelSelector = selectors.LabelSelector
Requirement = selectors.Requirement
SelectorError = selectors.SelectorError


def test_the_runner_and_the_filters_share_one_implementation() -> None:
    from ansible_collections.playbook_operator.bindings.plugins.module_utils import resolver
    from ansible_collections.playbook_operator.workloads.plugins.filter import podset

    assert watches.LabelSelector is LabelSelector and watches.LabelSelectorRequirement is Requirement
    assert podset.selectors is selectors and resolver.selectors is selectors


# --- matching and printing -----------------------------------------------------------------


def test_selector_string_sorts_by_key_and_values() -> None:
    selector = LabelSelector(
        match_labels={"z": "1", "app.kubernetes.io/name": "web", "env": "dev"},
        match_expressions=(Requirement("tier", "NotIn", ("b", "a", "c")), Requirement("env", "Exists")))
    assert selector.to_selector_string() == "app.kubernetes.io/name=web,env=dev,env,tier notin (a,b,c),z=1"
    assert str(selector) == selector.to_selector_string()
    assert LabelSelector().to_selector_string() == ""


@pytest.mark.parametrize(("labels", "selected"), [
    ({"a": "b", "c": "d"}, True),
    ({"a": "b", "c": "e", "x": "y"}, True),
    ({"a": "b", "c": "d", "f": ""}, False),  # f must not exist
    ({"a": "x", "c": "d"}, False),
    ({"c": "d"}, False),
    ({"a": "b"}, False),  # c must be in (d, e)
])
def test_selector_matches(labels: dict[str, str], selected: bool) -> None:
    selector = LabelSelector(match_labels={"a": "b"}, match_expressions=(
        Requirement("c", "In", ("d", "e")), Requirement("f", "DoesNotExist")))
    assert selector.matches(labels) is selected


def test_not_in_and_exists_match() -> None:
    not_in = Requirement("tier", "NotIn", ("db",))
    assert not_in.matches({}) and not_in.matches({"tier": "web"}) and not not_in.matches({"tier": "db"})
    exists = Requirement("tier", "Exists")
    assert exists.matches({"tier": ""}) and not exists.matches({})


def test_the_empty_selector_selects_everything_and_no_labels_are_none() -> None:
    assert LabelSelector().empty and LabelSelector().matches(None) and LabelSelector().matches({"a": "b"})
    assert LabelSelector(match_expressions=(Requirement("a", "DoesNotExist"),)).matches(None)
    assert not LabelSelector(match_labels={"a": "b"}).matches(None)


def test_the_object_form_is_read_and_printed_as_the_scale_subresource_prints_it() -> None:
    selector = selectors.label_selector({
        "matchLabels": {"zeta": "z", "app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a", "c"]},
                             {"key": "env", "operator": "NotIn", "values": ["prod"]},
                             {"key": "track", "operator": "Exists"},
                             {"key": "legacy", "operator": "DoesNotExist", "values": None},
                             {"key": "app", "operator": "In", "values": ["web", "api"]}],
    })
    assert selector.to_selector_string() == \
        "app=web,app in (api,web),env notin (prod),!legacy,tier in (a,b,c),track,zeta=z"
    assert selector.matches({"app": "web", "zeta": "z", "tier": "a", "track": ""})
    assert not selector.matches({"app": "web", "zeta": "z", "tier": "a", "track": "", "legacy": "1"})
    assert selectors.label_selector({}).empty
    assert selectors.label_selector({"matchLabels": None, "matchExpressions": None}).empty


def test_fields_the_apiserver_would_prune_are_ignored() -> None:
    assert selectors.label_selector({"matchLabels": {"a": "b"}, "other": 1}).to_selector_string() == "a=b"
    expr = {"key": "a", "operator": "Exists", "note": "x"}
    assert selectors.label_selector({"matchExpressions": [expr]}).to_selector_string() == "a"


# --- the string form -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("tier=db", {"tier": "db"}, True),
    ("tier==db", {"tier": "web"}, False),
    ("tier!=db", {"tier": "web"}, True),
    ("tier!=db", {}, True),
    ("tier=", {"tier": ""}, True),
    ("tier=", {}, False),
    ("tier in (db, cache),env", {"tier": "cache", "env": "x"}, True),
    ("tier in (db, cache),env", {"tier": "cache"}, False),
    ("tier notin (db)", {"tier": "db"}, False),
    ("tier notin (db)", {}, True),
    ("tier in (a,)", {"tier": ""}, True),  # "(a,)" holds the empty value, as in labels.Parse
    ("tier in ()", {"tier": ""}, True),
    ("!legacy", {"legacy": "1"}, False),
    ("!legacy", {}, True),
    ("  a = b ,  ! c  ", {"a": "b"}, True),
    ("in=notin", {"in": "notin"}, True),  # the keywords are plain words as keys and values
    ("replicas>2", {"replicas": "3"}, True),
    ("replicas>2", {"replicas": "2"}, False),
    ("replicas<2", {"replicas": "-1"}, True),
    ("replicas>2", {"replicas": "three"}, False),
    ("replicas>2", {}, False),
    ("example.com/app=web", {"example.com/app": "web"}, True),
    ("", {}, True),
    ("   ", {"a": "b"}, True),
])
def test_the_string_form_matches_as_labels_parse_reads_it(text: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.parse(text).matches(labels) is expected


def test_the_string_form_prints_as_kubernetes_prints_it() -> None:
    assert str(selectors.parse("b in (y, x),a==1,!c,d,e!=2,f>3,g<4")) == "a=1,b in (x,y),!c,d,e!=2,f>3,g<4"


def test_printing_and_parsing_agree() -> None:
    selector = selectors.label_selector({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["db", "cache"]}, {"key": "old", "operator": "DoesNotExist"}]})
    again = selectors.parse(selector.to_selector_string())
    assert again.to_selector_string() == selector.to_selector_string()
    for labels in ({"app": "web"}, {"app": "web", "tier": "db"}, {"app": "api"}, {"app": "web", "old": ""}):
        assert again.matches(labels) is selector.matches(labels)


@pytest.mark.parametrize("text", [
    "a=b,", ",a", "a,,b", "a=b=c", "a in b", "a in (b", "a in (b c)", "a notin", "!a=b", "!", "!!a",
    "a b", "a=(b)", "a<", "a>b", "a>-1", "a=b c", "bad key!=x", "a=bad value!", "-a", "a/b/c",
    "Example.com/a", "a=" + "x" * 64, "x" * 64, "(a)", "a in (b),",
])
def test_malformed_strings_are_refused(text: str) -> None:
    with pytest.raises(SelectorError):
        selectors.parse(text)


def test_the_watch_of_reads_takes_an_unreadable_selector_as_matching() -> None:
    # A read the apiserver refused found nothing to depend on, so this costs at most a
    # reconcile. (The older copy judged requirement by requirement and read "a>1" as the key
    # "a>1", so it missed every change of a pod it did select.)
    assert dependents.selector_matches("a in (b", {}) is True
    assert dependents.selector_matches("tier=db,a in (b", {"tier": "web"}) is True
    assert dependents.selector_matches("replicas>2", {"replicas": "3"}) is True
    assert dependents.selector_matches("replicas>2", {"replicas": "1"}) is False


# --- the object form, malformed ------------------------------------------------------------


@pytest.mark.parametrize(("selector", "field", "reason"), [
    ("app=web", "", "a label selector must be a mapping"),
    (None, "", "a label selector must be a mapping"),
    ({"matchLabels": ["app=web"]}, "matchLabels", "must be a mapping"),
    ({"matchLabels": {1: "x"}}, "matchLabels", "keys must be strings"),
    ({"matchLabels": {"bad key!": "x"}}, "matchLabels.bad key!", "invalid label key"),
    ({"matchLabels": {"Example.com/a": "x"}}, "matchLabels.Example.com/a", "lowercase DNS subdomain"),
    ({"matchLabels": {"x" * 64: "x"}}, f"matchLabels.{'x' * 64}", "63 characters or less"),
    # Not a string: the PodSet filters took str() of it, the ServiceBinding filters compared it
    # as it was (and so never matched), watches.yaml refused it; the apiserver refuses it.
    ({"matchLabels": {"tier": 1}}, "matchLabels.tier", "must be a string"),
    ({"matchLabels": {"tier": True}}, "matchLabels.tier", "must be a string"),
    ({"matchLabels": {"tier": None}}, "matchLabels.tier", "must be a string"),
    ({"matchLabels": {"tier": "has space"}}, "matchLabels.tier", "invalid label value"),
    ({"matchLabels": {"tier": "-x"}}, "matchLabels.tier", "invalid label value"),
    ({"matchExpressions": {"key": "a"}}, "matchExpressions", "must be a list"),
    ({"matchExpressions": ["a"]}, "matchExpressions[0]", "must be a mapping"),
    ({"matchExpressions": [{"operator": "Exists"}]}, "matchExpressions[0].key", "is required"),
    ({"matchExpressions": [{"key": "", "operator": "Exists"}]}, "matchExpressions[0].key", "is required"),
    ({"matchExpressions": [{"key": 1, "operator": "Exists"}]}, "matchExpressions[0].key", "must be a string"),
    ({"matchExpressions": [{"key": "a b", "operator": "Exists"}]}, "matchExpressions[0].key", "invalid label key"),
    ({"matchExpressions": [{"key": "a"}]}, "matchExpressions[0].operator",
     "None is not a valid label selector operator"),
    ({"matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]}, "matchExpressions[0].operator",
     "'in' is not a valid label selector operator; must be one of In, NotIn, Exists, DoesNotExist"),
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}, "matchExpressions[0].operator",
     "not a valid label selector operator"),
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, "matchExpressions[0].operator",
     "not a valid label selector operator"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": "b"}]}, "matchExpressions[0].values",
     "must be a list of strings"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": [1]}]}, "matchExpressions[0].values",
     "must be a list of strings"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b c"]}]}, "matchExpressions[0].values",
     "invalid label value"),
    # Empty In/NotIn: the ServiceBinding filters matched nothing (In) or everything (NotIn).
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "matchExpressions[0].values",
     "must not be empty for operator In"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}, "matchExpressions[0].values",
     "must not be empty for operator NotIn"),
    # Values on Exists/DoesNotExist: the ServiceBinding filters ignored them.
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "matchExpressions[0].values",
     "must be empty for operator Exists"),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}]},
     "matchExpressions[0].values", "must be empty for operator DoesNotExist"),
])
def test_malformed_selectors_are_refused_with_the_field_and_the_reason(selector: Any, field: str,
                                                                        reason: str) -> None:
    with pytest.raises(SelectorError) as caught:
        selectors.label_selector(selector)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value) == (f"{field}: {caught.value.reason}" if field else caught.value.reason)


def test_the_servicebinding_filters_fail_on_a_malformed_selector() -> None:
    from ansible.errors import AnsibleFilterError
    from ansible_collections.playbook_operator.bindings.plugins.module_utils import resolver

    bad = {"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]}
    with pytest.raises(AnsibleFilterError, match="invalid label selector in spec.workload.selector: "
                                                 r"matchExpressions\[0\].values: must not be empty"):
        resolver.selector_matches({"tier": "db"}, bad)
    with pytest.raises(AnsibleFilterError, match="not a valid label selector operator"):
        resolver.selector_matches({}, {"matchExpressions": [{"key": "a", "operator": "Bogus"}]})


def test_names_and_values() -> None:
    assert selectors.qualified_name_problem("example.com/name") is None
    assert selectors.qualified_name_problem("a") is None
    assert selectors.qualified_name_problem("/a") is not None
    assert selectors.qualified_name_problem("a/") is not None
    assert selectors.qualified_name_problem("a_b.c-d") is None
    assert selectors.label_value_problem("") is None
    assert selectors.label_value_problem("a" * 63) is None
    assert selectors.label_value_problem("a" * 64) is not None
    assert selectors.label_value_problem("a.") is not None
