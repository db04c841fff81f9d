"""Properties of runner.extravars: the SDK's snake_case conversion and the extra vars of any object.

The reference for snake_case is the Operator SDK's own algorithm (paramconv.ToSnake, which the
conversion table in test_extravars.py was checked against), transliterated below step by step,
Go's quirks included: it walks runes but looks one *byte* ahead, and it iterates its word map in
a random order, so the reference takes that order as an input.
"""

from __future__ import annotations

import copy
import json
import re
import string
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.extravars import (
    META_KEY,
    UNSAFE_KEY,
    build_extra_vars,
    mark_unsafe,
    object_var_name,
    snake_case_keys,
    to_snake_case,
)
from runner.watches import Finalizer
from tests.unit.test_extravars import SDK_TABLE, make_watch

pytestmark = pytest.mark.unit

# Fixed examples (derandomize) and no example database: the same run everywhere, nothing written.
# No deadline: on a loaded machine (CI runs the e2e tests beside these) an example can take
# longer once, and Hypothesis then fails the test for "unreliable timings".
SETTINGS = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# For the tests that build whole nested objects: fewer, larger examples.
OBJECT_SETTINGS = settings(SETTINGS, max_examples=60)

# --- the SDK's ToSnake, transliterated --------------------------------------------------------

_GO_NUMBER_SEQUENCE = re.compile(r"([a-zA-Z])([0-9]+)([a-zA-Z]([0-9]+))")  # Go's \d is ASCII only
_GO_WORD_MAPPING = {"http": "HTTP", "url": "URL", "ip": "IP"}


def _go_preprocess_word_mapping(value: str, order: Sequence[str]) -> str:
    for key in order:
        word = _GO_WORD_MAPPING[key]
        idx = value.find(word)
        if idx < 0:
            continue
        end = idx + len(word)
        if end - 1 == len(value) - 1:
            value = value[:idx] + "_" + value[idx:]
        elif value[end] == "s":
            if end == len(value) - 1:
                value = value[:idx] + "_" + value[idx:end] + "S"
            elif idx == 0:
                value = value[:end] + "S" + "_" + value[end + 1:]
            else:
                value = value[:idx] + "_" + value[idx:end] + "S" + "_" + value[end + 1:]
        elif idx == 0:
            value = value[:end] + "_" + value[end:]
        else:
            value = value[:idx] + "_" + value[idx:end] + "_" + value[end:]
    return value


def _upper(c: int) -> bool:
    return ord("A") <= c <= ord("Z")


def _lower(c: int) -> bool:
    return ord("a") <= c <= ord("z")


def go_to_snake(s: str, order: Sequence[str]) -> str:
    """paramconv.ToSnake with the word map iterated in ``order``; strings.ToLower is str.lower
    (they differ only for a few exotic code points). Go panics on an empty name; this says ""."""
    s = _GO_NUMBER_SEQUENCE.sub(r"\1 \2 \3", s).strip(" ")
    if not s:
        return ""
    prefix = "_" if "A" <= s[0] <= "Z" else ""
    s = _go_preprocess_word_mapping(s, order)
    raw = s.encode()
    bits: list[str] = []
    n = ""
    i_real = -1
    i = 0  # byte offset of the rune, as Go's `for i, v := range s`
    for v in s:
        i_real += 1
        code = ord(v)
        next_case_is_changed = False
        if i + 1 < len(raw):
            following = raw[i + 1]  # the next byte, not the next rune
            next_case_is_changed = ((_upper(code) and _lower(following))
                                    or (_lower(code) and _upper(following)))
        if i_real > 0 and next_case_is_changed:
            assert n, "Go would index an empty string here and panic"
            if n[-1] != "_":
                if _upper(code):
                    bits.append(n.lower())
                    n = v
                    i_real = 0
                else:
                    bits.append((n + v).lower())
                    n = ""
                    i_real = -1
            else:
                n += v
        elif v in " _-":
            bits.append(n.lower())
            n = ""
            i_real = -1
        else:
            n += v
        i += len(v.encode())
    bits.append(n.lower())
    joined = "_".join(bits)
    return joined if bits[0] in _GO_WORD_MAPPING else prefix + joined


def test_the_reference_agrees_with_the_sdk_table() -> None:
    for name, snake in SDK_TABLE:
        assert go_to_snake(name, ["http", "url", "ip"]) == snake


# --- strategies -------------------------------------------------------------------------------

# Names built from the pieces the rules care about: case flips, digits after letters, the
# special words and their plurals, the three delimiters, and a little non-ASCII.
FRAGMENTS = st.sampled_from([
    *"aAbBsSxXzZ", "0", "1", "42", " ", "_", "-", ".", "/", "\u00e9", "\u00c9", "\u00df", "\u212a",
    "IP", "IPs", "Ip", "HTTP", "HTTPs", "Http", "URL", "URLs", "ip", "http", "url", "JSON", "k8s", "v1",
])
NAMES = st.lists(FRAGMENTS, max_size=12).map("".join)
ANY_NAMES = st.one_of(NAMES, st.text(max_size=30))
WORD_ORDERS = st.permutations(list(_GO_WORD_MAPPING))

# Already snake_case: lower-case letters, digits and underscores, without the "a1b2" runs the
# SDK splits (a letter, digits, a letter, digits), which are not snake_case to it.
SNAKE_NAMES = st.from_regex(r"[a-z0-9_]*", fullmatch=True).filter(lambda s: not _GO_NUMBER_SEQUENCE.search(s))

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(keys, inner, max_size=4), max_leaves=20)


def shape(value: Any) -> Any:
    """``value`` with every mapping replaced by the list of its values: the structure and the
    leaves, without the keys."""
    if isinstance(value, dict):
        return ["<map>", *[shape(item) for item in value.values()]]
    if isinstance(value, list):
        return [shape(item) for item in value]
    return value


def has_colliding_keys(value: Any) -> bool:
    if isinstance(value, dict):
        if len({to_snake_case(key) for key in value}) < len(value):
            return True
        return any(has_colliding_keys(item) for item in value.values())
    if isinstance(value, list):
        return any(has_colliding_keys(item) for item in value)
    return False


# --- to_snake_case ----------------------------------------------------------------------------


@SETTINGS
@given(name=ANY_NAMES, order=WORD_ORDERS)
def test_to_snake_case_is_the_sdks_conversion_in_any_word_map_order(name: str, order: list[str]) -> None:
    assert to_snake_case(name) == go_to_snake(name, order)


@SETTINGS
@given(name=st.text())
def test_to_snake_case_never_raises_and_leaves_no_capitals_spaces_or_dashes(name: str) -> None:
    snake = to_snake_case(name)
    assert isinstance(snake, str)
    assert not any(c in snake for c in string.ascii_uppercase + " -")


@SETTINGS
@given(name=SNAKE_NAMES)
def test_already_snake_case_names_are_unchanged(name: str) -> None:
    assert to_snake_case(name) == name


@SETTINGS
@given(name=ANY_NAMES)
def test_converting_again_changes_nothing_unless_digit_runs_are_left(name: str) -> None:
    # The SDK splits only one "a1b2" run per pass ("a1b2c3" -> "a_1_b2c3" -> "a_1_b_2_c3"), so
    # a result with such a run left is not a fixed point, there as here; any other result is.
    once = to_snake_case(name)
    if not _GO_NUMBER_SEQUENCE.search(once):
        assert to_snake_case(once) == once


@SETTINGS
@given(name=st.tuples(st.sampled_from("abxz"), NAMES).map("".join))
def test_a_capital_first_letter_adds_a_leading_underscore(name: str) -> None:
    # "replicaCount" -> "replica_count", "ReplicaCount" -> "_replica_count": the same words,
    # marked by a leading underscore (these letters start no special word, which would drop it).
    capital = name[0].upper() + name[1:]
    assert to_snake_case(capital) == "_" + to_snake_case(name)


# --- snake_case_keys --------------------------------------------------------------------------


@OBJECT_SETTINGS
@given(value=json_values(ANY_NAMES))
def test_snake_case_keys_keeps_shape_and_values(value: Any) -> None:
    before = copy.deepcopy(value)
    converted = snake_case_keys(value)
    assert value == before
    if not has_colliding_keys(value):
        # Only keys change: the same nesting, the same leaves in the same places.
        assert shape(converted) == shape(value)


@OBJECT_SETTINGS
@given(value=json_values(ANY_NAMES))
def test_snake_case_keys_converts_every_key_at_every_depth(value: Any) -> None:
    def check(original: Any, converted: Any) -> None:
        if isinstance(original, dict):
            assert isinstance(converted, dict)
            assert set(converted) == {to_snake_case(key) for key in original}
            for key, item in original.items():
                if [k for k in original if to_snake_case(k) == to_snake_case(key)][-1] == key:
                    check(item, converted[to_snake_case(key)])
        elif isinstance(original, list):
            assert isinstance(converted, list) and len(converted) == len(original)
            for a, b in zip(original, converted, strict=True):
                check(a, b)
        else:
            assert converted == original and type(converted) is type(original)

    check(value, snake_case_keys(value))


LETTER_WORDS = st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=4)


@OBJECT_SETTINGS
@given(words=LETTER_WORDS, data=st.data())
def test_keys_that_convert_to_the_same_name_keep_the_last_value(words: list[str], data: st.DataObject) -> None:
    # Spellings of one name ("replica_count", "replicaCount", "replica-count", "ReplicaCount")
    # may collide; the SDK keeps whichever its Go map yields last, this the last in the object.
    def spelling() -> str:
        first = data.draw(st.sampled_from([words[0], words[0].capitalize()]))
        rest = [data.draw(st.sampled_from(["_", "-", " ", ""])) + data.draw(st.sampled_from([w, w.capitalize()]))
                for w in words[1:]]
        return first + "".join(rest)

    names = list(dict.fromkeys(spelling() for _ in range(data.draw(st.integers(2, 5)))))
    spec = {name: index for index, name in enumerate(names)}
    converted = snake_case_keys(spec)
    assert set(converted) == {to_snake_case(name) for name in names}
    for target, value in converted.items():
        assert value == max(i for name, i in spec.items() if to_snake_case(name) == target)
    # Spelled with underscores, lower case, the name is its own conversion and nothing else's
    # but the other spellings that convert to it.
    assert to_snake_case("_".join(words)) == "_".join(words)


# --- build_extra_vars -------------------------------------------------------------------------

DNS_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
DNS_SUBDOMAIN = st.lists(DNS_LABEL, min_size=1, max_size=3).map(".".join)
KINDS = st.from_regex(r"[A-Z][A-Za-z0-9]{0,15}", fullmatch=True)
# Spec fields that try to pass for the generated vars, among ordinary ones.
SPEC_KEYS = st.one_of(ANY_NAMES, st.sampled_from([
    META_KEY, "ansibleOperatorMeta", "AnsibleOperatorMeta", "_cache_example_com_memcached", "name", "namespace"]))


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": draw(DNS_SUBDOMAIN)}
    if draw(st.booleans()):
        metadata["namespace"] = draw(DNS_LABEL)
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(DNS_LABEL, DNS_LABEL, max_size=3))
    obj: dict[str, Any] = {"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached", "metadata": metadata}
    if draw(st.booleans()):
        obj["spec"] = draw(st.dictionaries(SPEC_KEYS, json_values(ANY_NAMES), max_size=6))
    if draw(st.booleans()):
        obj["status"] = draw(json_values(ANY_NAMES))
    return obj


@OBJECT_SETTINGS
@given(value=json_values(ANY_NAMES.filter(lambda k: k != UNSAFE_KEY)))
def test_mark_unsafe_wraps_every_string_and_nothing_else(value: Any) -> None:
    def unwrap(wrapped: Any) -> Any:
        if isinstance(wrapped, dict):
            if set(wrapped) == {UNSAFE_KEY}:
                assert isinstance(wrapped[UNSAFE_KEY], str)
                return wrapped[UNSAFE_KEY]
            return {key: unwrap(item) for key, item in wrapped.items()}
        if isinstance(wrapped, list):
            return [unwrap(item) for item in wrapped]
        assert not isinstance(wrapped, str), "a string left unwrapped"
        return wrapped

    assert unwrap(mark_unsafe(value)) == value


FINALIZER_VAR = "finalizer var"  # no spec key converts to it: it has a space


@OBJECT_SETTINGS
@given(obj=objects(), group=st.one_of(st.just(""), DNS_SUBDOMAIN), kind=KINDS,
       snake=st.booleans(), unsafe=st.booleans(), finalizer=st.booleans(),
       watch_vars=st.dictionaries(NAMES.filter(lambda k: k not in (META_KEY, FINALIZER_VAR)), JSON_SCALARS,
                                  max_size=3))
def test_extra_vars_of_any_object(obj: dict[str, Any], group: str, kind: str, snake: bool, unsafe: bool,
                                  finalizer: bool, watch_vars: dict[str, Any]) -> None:
    watch = make_watch(group=group, kind=kind, snake_case_parameters=snake, mark_unsafe=unsafe, vars=watch_vars,
                       finalizer=Finalizer("cache.example.com/finalizer", vars={FINALIZER_VAR: True}))
    before = copy.deepcopy(obj)
    extra = build_extra_vars(watch, obj, finalizer=finalizer)
    assert obj == before

    # The object's own name and namespace, whatever the spec holds, never wrapped as unsafe.
    meta = obj["metadata"]
    assert extra[META_KEY] == {"name": meta["name"], "namespace": meta.get("namespace", "")}

    # Then the spec's fields, the whole object, its spec, the watch's vars, the finalizer's: each
    # layer wins over the ones before it.
    wrap = mark_unsafe if unsafe else (lambda value: value)
    spec = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
    var = object_var_name(group, kind)
    expected = {key: wrap(value) for key, value in (snake_case_keys(spec) if snake else spec).items()}
    expected[META_KEY] = extra[META_KEY]
    expected[var] = wrap({**obj, "spec": spec})
    expected[f"{var}_spec"] = wrap(spec)
    expected.update(watch_vars)
    if finalizer:
        expected[FINALIZER_VAR] = True
    assert extra == expected

    # What Ansible gets is JSON, and JSON gives it back unchanged.
    assert json.loads(json.dumps(extra)) == extra
