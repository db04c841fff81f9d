"""Kubernetes label selectors, as apimachinery reads, validates, matches and prints them.

Two spellings of one idea:

* the object form, ``metav1.LabelSelector`` (``{matchLabels: {...}, matchExpressions: [...]}``),
  read by :func:`label_selector` as ``metav1.LabelSelectorAsSelector`` reads it;
* the string form of a ``labelSelector`` query (``a=b,c!=d,e in (x,y),f notin (z),g,!h,n>1``),
  read by :func:`parse` as ``labels.Parse`` reads it.

Both give a :class:`LabelSelector`. Anything the apiserver would refuse (a key that is not a
qualified name, a value that is not a label value, an unknown operator, values where none may
be or none where some must be, a non-string where a string must be) raises
:class:`SelectorError`, which names the field and the reason. Fields of the object form that
are not ``matchLabels`` and ``matchExpressions`` (or an expression's ``key``, ``operator`` and
``values``) are ignored, as the apiserver prunes them. What to do with a selector that does
not read (fail, or take it as matching) is the caller's decision.

A selector with no requirements selects everything; "no selector at all" (None) is the
caller's to interpret (a missing metav1.LabelSelector selects nothing).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The operators of metav1.LabelSelector's matchExpressions.
IN = "In"
NOT_IN = "NotIn"
EXISTS = "Exists"
DOES_NOT_EXIST = "DoesNotExist"
SELECTOR_OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST)
# The string form has three more: `=` (or `==`), `!=`, and the integer comparisons `>` and `<`.
EQUALS = "Equals"
NOT_EQUALS = "NotEquals"
GREATER_THAN = "Gt"
LESS_THAN = "Lt"

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_INT64 = re.compile(r"[+-]?[0-9]+")


class SelectorError(ValueError):
    """A selector the apiserver would refuse: ``field`` (relative to the selector, "" for the
    whole) and ``reason``."""

    def __init__(self, reason: str, field: str = "") -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


# --- names and values ------------------------------------------------------------------------


def qualified_name_problem(name: str) -> str | None:
    """Why ``name`` is not a qualified name (``[prefix/]name``, as label keys, annotation keys
    and finalizers are), or None if it is one."""
    prefix, slash, local = name.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "the prefix before '/' must be a lowercase DNS subdomain"
    if not local or len(local) > 63 or not _NAME_PART.fullmatch(local):
        return ("the name must be 63 characters or less, alphanumeric, '-', '_' or '.', "
                "starting and ending with an alphanumeric character")
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a label value, or None if it is one (the empty string is)."""
    if value == "" or (len(value) <= 63 and _NAME_PART.fullmatch(value)):
        return None
    return ("a label value must be empty or 63 characters or less, alphanumeric, '-', '_' or '.', "
            "starting and ending with an alphanumeric character")


def _int64(text: str) -> int | None:
    """An integer as Go's ``strconv.ParseInt(text, 10, 64)`` reads it, else None."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# --- the selector ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One requirement: ``key`` ``operator`` ``values`` (operator one of the constants above)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, Any]) -> bool:
        """Whether a set of labels satisfies this requirement (``labels.Requirement.Matches``)."""
        present = self.key in labels
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if self.operator in (IN, EQUALS):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if self.operator in (GREATER_THAN, LESS_THAN) and present and len(self.values) == 1:
            have = _int64(str(labels[self.key]))
            want = _int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if self.operator == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in (IN, NOT_IN):
            word = "in" if self.operator == IN else "notin"
            return f"{self.key} {word} ({','.join(sorted(self.values))})"
        sign = {EQUALS: "=", NOT_EQUALS: "!=", GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, "?")
        return f"{self.key}{sign}{','.join(sorted(self.values))}"


@dataclass(frozen=True)
class LabelSelector:
    """A label selector: ``match_labels`` (each an Equals requirement) and ``match_expressions``.

    The empty selector selects everything. Treat ``match_labels`` as read-only.
    """

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def requirements(self) -> list[Requirement]:
        """Every requirement, sorted by key as apimachinery sorts them (match labels first on
        equal keys, then expressions in their order)."""
        reqs = [Requirement(key, EQUALS, (value,)) for key, value in self.match_labels.items()]
        reqs += self.match_expressions
        return sorted(reqs, key=lambda req: req.key)  # stable

    def matches(self, labels: Mapping[str, Any] | None) -> bool:
        """Whether an object with these labels (None: none) is selected."""
        present = labels or {}
        if any(key not in present or present[key] != value for key, value in self.match_labels.items()):
            return False
        return all(req.matches(present) for req in self.match_expressions)

    def to_selector_string(self) -> str:
        """The selector in the API's ``labelSelector`` query syntax, e.g. ``a=b,c in (d,e),!f``:
        requirements sorted by key, set values sorted, as Kubernetes prints selectors (the
        scale subresource's ``selector``, ``kubectl get -o wide``). The empty selector is ""."""
        return ",".join(str(req) for req in self.requirements())

    def __str__(self) -> str:
        return self.to_selector_string()


# --- the object form -------------------------------------------------------------------------


def label_selector(value: Any) -> LabelSelector:
    """A ``metav1.LabelSelector`` object, validated as the apiserver validates one. Raises SelectorError."""
    if not isinstance(value, Mapping):
        raise SelectorError(f"a label selector must be a mapping (an object), got {_type_name(value)} ({value!r})")
    labels = value.get("matchLabels")
    if labels is None:
        labels = {}
    if not isinstance(labels, Mapping):
        raise SelectorError(f"must be a mapping (an object), got {_type_name(labels)}", "matchLabels")
    for key, label in labels.items():
        if not isinstance(key, str):
            raise SelectorError(f"keys must be strings, got {key!r}", "matchLabels")
        where = f"matchLabels.{key}"
        problem = qualified_name_problem(key)
        if problem:
            raise SelectorError(f"invalid label key {key!r}: {problem}", where)
        if not isinstance(label, str):
            raise SelectorError(f"must be a string, got {_type_name(label)} ({label!r}); quote it", where)
        problem = label_value_problem(label)
        if problem:
            raise SelectorError(f"invalid label value {label!r}: {problem}", where)
    expressions = value.get("matchExpressions")
    if expressions is None:
        expressions = []
    if not isinstance(expressions, list | tuple):
        raise SelectorError(f"must be a list, got {_type_name(expressions)}", "matchExpressions")
    requirements = tuple(_requirement(item, f"matchExpressions[{i}]") for i, item in enumerate(expressions))
    return LabelSelector(match_labels=dict(labels), match_expressions=requirements)


def _requirement(value: Any, where: str) -> Requirement:
    if not isinstance(value, Mapping):
        raise SelectorError(f"must be a mapping (an object), got {_type_name(value)}", where)
    key = value.get("key")
    if key is None or key == "":
        raise SelectorError("is required and must be a non-empty string", f"{where}.key")
    if not isinstance(key, str):
        raise SelectorError(f"must be a string, got {_type_name(key)} ({key!r})", f"{where}.key")
    problem = qualified_name_problem(key)
    if problem:
        raise SelectorError(f"invalid label key {key!r}: {problem}", f"{where}.key")
    operator = value.get("operator")
    if operator not in SELECTOR_OPERATORS:
        raise SelectorError(f"{operator!r} is not a valid label selector operator; "
                            f"must be one of {', '.join(SELECTOR_OPERATORS)}", f"{where}.operator")
    values = value.get("values")
    if values is None:
        values = []
    if not isinstance(values, list | tuple):
        raise SelectorError(f"must be a list of strings, got {_type_name(values)}", f"{where}.values")
    for item in values:
        if not isinstance(item, str):
            raise SelectorError(f"must be a list of strings, got {_type_name(item)} ({item!r})", f"{where}.values")
        problem = label_value_problem(item)
        if problem:
            raise SelectorError(f"invalid label value {item!r}: {problem}", f"{where}.values")
    if operator in (IN, NOT_IN) and not values:
        raise SelectorError(f"must not be empty for operator {operator}", f"{where}.values")
    if operator in (EXISTS, DOES_NOT_EXIST) and values:
        raise SelectorError(f"must be empty for operator {operator}", f"{where}.values")
    return Requirement(key=key, operator=str(operator), values=tuple(values))


# --- the string form -------------------------------------------------------------------------

_SPECIAL = frozenset("=!(),><")
_SYMBOLS = ("!=", "==", "=", "!", "(", ")", ",", ">", "<")  # longest first
_SPACE = " \t\r\n"
_END = ""


def _tokens(text: str) -> list[str]:
    """The lexer of ``labels.Parse``: symbols, words (``in`` and ``notin`` among them) and the end."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in _SPACE:
            pos += 1
        elif ch in _SPECIAL:
            symbol = next(s for s in _SYMBOLS if text.startswith(s, pos))
            tokens.append(symbol)
            pos += len(symbol)
        else:
            end = pos
            while end < len(text) and text[end] not in _SPACE and text[end] not in _SPECIAL:
                end += 1
            tokens.append(text[pos:end])
            pos = end
    tokens.append(_END)
    return tokens


def _is_word(token: str) -> bool:
    return token != _END and token[0] not in _SPECIAL


def _shown(token: str) -> str:
    return "end of string" if token == _END else token


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> LabelSelector:
    """A selector in its string form, read as ``labels.Parse`` reads it. Raises SelectorError.

    ``=`` and ``==`` are both Equals; all requirements land in ``match_expressions``. The
    empty string (or only spaces) selects everything.
    """
    tokens = _tokens(text)
    pos = 0
    requirements: list[Requirement] = []
    while tokens[pos] != _END:
        negated = tokens[pos] == "!"
        if negated:
            pos += 1
        key = tokens[pos]
        if not _is_word(key):
            raise SelectorError(f"found '{_shown(key)}', expected: identifier")
        problem = qualified_name_problem(key)
        if problem:
            raise SelectorError(f"invalid label key {key!r}: {problem}")
        pos += 1
        following = tokens[pos]
        if negated or following in (",", _END):
            requirements.append(Requirement(key, DOES_NOT_EXIST if negated else EXISTS))
        elif following in ("in", "notin"):
            pos += 1
            if tokens[pos] != "(":
                raise SelectorError(f"found '{_shown(tokens[pos])}', expected: '('")
            pos += 1
            values: set[str] = set()
            expect_value = True
            while tokens[pos] != ")":
                token = tokens[pos]
                if token == ",":
                    if expect_value:
                        values.add("")  # "(,", ",," and ",)" hold the empty value
                    expect_value = True
                elif _is_word(token) and expect_value:
                    values.add(token)
                    expect_value = False
                else:
                    raise SelectorError(f"found '{_shown(token)}', expected: ',', ')' or identifier")
                pos += 1
            if expect_value:
                values.add("")  # "()" and "(a,)"
            pos += 1
            requirements.append(_checked(key, IN if following == "in" else NOT_IN, values))
        elif following in ("=", "==", "!=", ">", "<"):
            pos += 1
            value = ""
            if _is_word(tokens[pos]):
                value = tokens[pos]
                pos += 1
            elif tokens[pos] not in (",", _END):
                raise SelectorError(f"found '{_shown(tokens[pos])}', expected: identifier")
            operator = {"=": EQUALS, "==": EQUALS, "!=": NOT_EQUALS, ">": GREATER_THAN, "<": LESS_THAN}[following]
            requirements.append(_checked(key, operator, {value}))
        else:
            raise SelectorError(f"found '{_shown(following)}', expected: in, notin, =, ==, !=, gt, lt")
        if tokens[pos] == ",":
            pos += 1
            if not (_is_word(tokens[pos]) or tokens[pos] == "!"):
                raise SelectorError(f"found '{_shown(tokens[pos])}', expected: identifier after ','")
        elif tokens[pos] != _END:
            raise SelectorError(f"found '{_shown(tokens[pos])}', expected: ',' or 'end of string'")
    return LabelSelector(match_expressions=tuple(sorted(requirements, key=lambda req: req.key)))


def _checked(key: str, operator: str, values: set[str]) -> Requirement:
    for value in values:
        problem = label_value_problem(value)
        if problem:
            raise SelectorError(f"invalid label value {value!r} of {key!r}: {problem}")
    if operator in (GREATER_THAN, LESS_THAN) and _int64(next(iter(values))) is None:
        raise SelectorError(f"for the operators > and <, the value of {key!r} must be an integer")
    return Requirement(key, operator, tuple(sorted(values)))
