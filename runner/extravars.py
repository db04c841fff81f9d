"""The extra vars a role or playbook receives for one object, and per-object run overrides.

The vars are the Operator SDK Ansible operator's, so roles written for it run unchanged.
For an object of kind ``Memcached`` in group ``cache.example.com`` they are, later
entries winning over earlier ones:

1. every ``spec`` field at the top level, keys converted to snake_case at every depth
   (:func:`to_snake_case`) unless the watch sets ``snakeCaseParameters: false``;
2. ``ansible_operator_meta``: ``{name, namespace}`` of the object;
3. ``_cache_example_com_memcached``: the whole object as read from the API, keys untouched;
4. ``_cache_example_com_memcached_spec``: its ``spec``, keys untouched;
5. the watch's ``vars``;
6. the finalizer's ``vars``, on a finalizer run.

With ``markUnsafe: true`` every string inside 1, 3 and 4 is wrapped as
``{"__ansible_unsafe": "<string>"}``, exactly as the SDK does. Ansible's JSON decoder turns
that form into an unsafe (never templated) string, so the vars must reach Ansible as JSON
(ansible-runner's ``env/extravars`` written as JSON); no other conversion is needed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.watches import MAX_ANSIBLE_VERBOSITY, Watch, parse_duration, parse_go_int

META_KEY = "ansible_operator_meta"
UNSAFE_KEY = "__ansible_unsafe"

RECONCILE_PERIOD_ANNOTATION = "ansible.sdk.operatorframework.io/reconcile-period"
MAX_RUNNER_ARTIFACTS_ANNOTATION = "ansible.sdk.operatorframework.io/max-runner-artifacts"
VERBOSITY_ANNOTATION = "ansible.sdk.operatorframework.io/verbosity"

# --- snake_case ---------------------------------------------------------------------------------------

# "a1b2" style runs get spaces ("a 1 b2") so digits start their own word.
_LETTER_DIGITS_LETTER_DIGITS = re.compile(r"([a-zA-Z])([0-9]+)([a-zA-Z]([0-9]+))")
# Acronyms kept whole (and their plurals: "IPs" -> "ips"). Order does not change results.
_SPECIAL_WORDS = ("HTTP", "URL", "IP")
_SPECIAL_WORDS_LOWER = frozenset(word.lower() for word in _SPECIAL_WORDS)
_DELIMITERS = frozenset(" _-")


def _is_upper(char: str) -> bool:
    return "A" <= char <= "Z"


def _is_lower(char: str) -> bool:
    return "a" <= char <= "z"


def _isolate_special_words(value: str) -> str:
    """Surround the first occurrence of each special word with underscores.

    A trailing ``s`` right after the word is taken as its plural and upper-cased with it,
    so ``egressIPsEgress`` becomes ``egress_IPS_Egress``.
    """
    for word in _SPECIAL_WORDS:
        start = value.find(word)
        if start < 0:
            continue
        end = start + len(word)
        # At the very start no separator goes before the word, except when it is also the
        # whole rest of the name ("IP", "IPs" -> "_IP", "_IPS"), which the SDK does too.
        before = value[:start] + "_" if start > 0 else ""
        if end == len(value):
            value = value[:start] + "_" + word
        elif value[end] == "s" and end + 1 == len(value):
            value = value[:start] + "_" + word + "S"
        elif value[end] == "s":
            value = before + word + "S_" + value[end + 1:]
        else:
            value = before + word + "_" + value[end:]
    return value


def to_snake_case(name: str) -> str:
    """Convert a parameter name to snake_case with the Operator SDK's rules.

    ``sizeK8sBuckets`` -> ``size_k8s_buckets``, ``egressIPs`` -> ``egress_ips``, and a
    leading capital becomes a leading underscore: ``ThisShouldHaveUnderscores`` ->
    ``_this_should_have_underscores`` (unless the first word is HTTP, URL or IP).
    Spaces, dashes and underscores separate words; already snake_case names are unchanged.
    """
    text = _LETTER_DIGITS_LETTER_DIGITS.sub(r"\1 \2 \3", name).strip(" ")
    if not text:
        return ""
    prefix = "_" if _is_upper(text[0]) else ""
    text = _isolate_special_words(text)

    words: list[str] = []
    word = ""
    for i, char in enumerate(text):
        following = text[i + 1] if i + 1 < len(text) else ""
        case_flips = (_is_upper(char) and _is_lower(following)) or (_is_lower(char) and _is_upper(following))
        if case_flips and len(word) > 0:
            if _is_upper(char):  # "JSONData": the capital before a lower-case run starts a new word
                words.append(word.lower())
                word = char
            else:  # "sizeK8s": a lower-case letter before a capital ends its word
                words.append((word + char).lower())
                word = ""
        elif char in _DELIMITERS:
            words.append(word.lower())
            word = ""
        else:
            word += char
    words.append(word.lower())
    joined = "_".join(words)
    return joined if words[0] in _SPECIAL_WORDS_LOWER else prefix + joined


def snake_case_keys(value: Any) -> Any:
    """A copy of ``value`` with every mapping key, at any depth, passed through :func:`to_snake_case`.

    Values are not converted; lists are walked so mappings inside them are converted too.
    When two keys convert to the same name, the later one wins.
    """
    if isinstance(value, Mapping):
        return {to_snake_case(key) if isinstance(key, str) else key: snake_case_keys(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [snake_case_keys(item) for item in value]
    return value


# --- extra vars ---------------------------------------------------------------------------------------


def mark_unsafe(value: Any) -> Any:
    """A copy of ``value`` with every string, at any depth, as ``{"__ansible_unsafe": string}``.

    Mapping keys are left as they are; numbers, booleans and null are not strings.
    """
    if isinstance(value, str):
        return {UNSAFE_KEY: value}
    if isinstance(value, Mapping):
        return {key: mark_unsafe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mark_unsafe(item) for item in value]
    return value


def object_var_name(group: str, kind: str) -> str:
    """The name of the var holding the whole object: ``_<group>_<kind>``.

    The kind is lower-cased (the group is used as written) and dots and dashes become
    underscores so Ansible can address it: ``_cert_manager_io_certificate``. The core
    group is empty, giving ``__configmap``.
    """
    return f"_{group}_{kind.lower()}".replace(".", "_").replace("-", "_")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def build_extra_vars(watch: Watch, obj: Mapping[str, Any], *, finalizer: bool = False) -> dict[str, Any]:
    """The extra vars for running ``watch``'s role or playbook on ``obj`` (see the module docstring).

    ``finalizer`` selects a finalizer run, which adds the finalizer's vars; it needs a watch
    with a finalizer. An object without a mapping ``spec`` is treated as having an empty
    one, in the vars and in the object var alike. Nothing returned shares structure with
    ``obj`` or ``watch``.
    """
    if finalizer and watch.finalizer is None:
        raise ValueError(f"watch {watch.gvk} has no finalizer")
    whole = copy.deepcopy(dict(obj))
    if not isinstance(whole.get("spec"), dict):
        whole["spec"] = {}
    spec: dict[str, Any] = whole["spec"]
    metadata = whole.get("metadata") or {}

    parameters: dict[str, Any] = snake_case_keys(spec) if watch.snake_case_parameters else copy.deepcopy(spec)
    if watch.mark_unsafe:
        parameters = {key: mark_unsafe(value) for key, value in parameters.items()}
    parameters[META_KEY] = {"name": _text(metadata.get("name")),
                            "namespace": _text(metadata.get("namespace"))}

    object_key = object_var_name(watch.group, watch.kind)
    if watch.mark_unsafe:
        parameters[object_key] = mark_unsafe(whole)
        parameters[f"{object_key}_spec"] = mark_unsafe(spec)
    else:
        parameters[object_key] = whole
        parameters[f"{object_key}_spec"] = copy.deepcopy(spec)

    parameters.update(copy.deepcopy(watch.vars))
    if finalizer and watch.finalizer is not None:
        parameters.update(copy.deepcopy(watch.finalizer.vars))
    return parameters


# --- per-object overrides -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Overrides:
    """Run settings for one object: the watch's, replaced by the object's valid annotations.

    ``reconcile_period`` is in seconds (0: no periodic reconcile); ``max_runner_artifacts``
    0 keeps every artifact directory. ``warnings`` describes each annotation that was ignored.
    """

    reconcile_period: float
    max_runner_artifacts: int
    verbosity: int
    warnings: tuple[str, ...] = ()


def object_overrides(watch: Watch, obj: Mapping[str, Any]) -> Overrides:
    """Apply the object's ``ansible.sdk.operatorframework.io/*`` annotations to the watch's settings.

    * ``.../reconcile-period``: a Go duration such as ``"30s"``; ``"0s"`` turns periodic
      reconciles off for this object;
    * ``.../max-runner-artifacts``: an integer >= 0; ``"0"`` keeps every run's artifacts;
    * ``.../verbosity``: an integer from 0 to 7.

    An annotation that does not parse or is out of range is ignored and reported in
    ``warnings``; this never raises.
    """
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    warnings: list[str] = []

    def annotation(name: str) -> str | None:
        value = annotations.get(name)
        if value is None or isinstance(value, str):
            return value
        warnings.append(f"ignoring annotation {name}: value must be a string, got {value!r}")
        return None

    period = watch.reconcile_period
    text = annotation(RECONCILE_PERIOD_ANNOTATION)
    if text is not None:
        try:
            seconds = parse_duration(text)
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            period = seconds
        else:
            warnings.append(f"ignoring annotation {RECONCILE_PERIOD_ANNOTATION}={text!r}: "
                            'not a duration such as "30s", "5m" or "1h30m"')

    artifacts = watch.max_runner_artifacts
    text = annotation(MAX_RUNNER_ARTIFACTS_ANNOTATION)
    if text is not None:
        number = parse_go_int(text)
        if number is not None and number >= 0:
            artifacts = number
        else:
            warnings.append(f"ignoring annotation {MAX_RUNNER_ARTIFACTS_ANNOTATION}={text!r}: "
                            "not an integer >= 0")

    verbosity = watch.ansible_verbosity
    text = annotation(VERBOSITY_ANNOTATION)
    if text is not None:
        number = parse_go_int(text)
        if number is not None and 0 <= number <= MAX_ANSIBLE_VERBOSITY:
            verbosity = number
        else:
            warnings.append(f"ignoring annotation {VERBOSITY_ANNOTATION}={text!r}: "
                            f"not an integer from 0 to {MAX_ANSIBLE_VERBOSITY}")

    return Overrides(reconcile_period=period, max_runner_artifacts=artifacts, verbosity=verbosity,
                     warnings=tuple(warnings))
