"""Load and validate ``watches.yaml``: which Ansible role or playbook reconciles which kind.

The file format is the Operator SDK Ansible operator's ``watches.yaml``. Every field it
accepts is accepted here, with the same defaults and the same meaning:

==============================  ===========================  ==================================
key                             default                      attribute on :class:`Watch`
==============================  ===========================  ==================================
group                           ``""`` (the core group)      ``group``
version, kind                   required                     ``version``, ``kind``
role / playbook                 exactly one is required      ``role`` / ``playbook`` (Path)
vars                            ``{}``                       ``vars``
reconcilePeriod                 the operator-wide period     ``reconcile_period`` (seconds)
manageStatus                    true                         ``manage_status``
watchDependentResources         true                         ``watch_dependent_resources``
watchClusterScopedResources     false                        ``watch_cluster_scoped_resources``
maxRunnerArtifacts              20                           ``max_runner_artifacts``
finalizer                       none                         ``finalizer``
blacklist                       ``[]``                       ``blacklist``
selector                        everything                   ``selector``
snakeCaseParameters             true                         ``snake_case_parameters``
markUnsafe                      false                        ``mark_unsafe``
watchAnnotationsChanges         false                        ``watch_annotations_changes``
maxConcurrentReconciles (ext.)  operator-wide default        ``max_concurrent_reconciles``
ansibleVerbosity (ext.)         operator-wide default (2)    ``ansible_verbosity``
runTimeout (ext.)               operator-wide (none)         ``run_timeout`` (seconds, 0: none)
==============================  ===========================  ==================================

Behaviour shared with the SDK:

* ``$NAME`` and ``${NAME}`` are replaced by environment variables in the whole file
  before it is parsed (keys, values, any field); references to unset variables stay as
  written.
* ``reconcilePeriod`` is a Go duration string (``"90s"``, ``"1h30m"``); leaving it out
  or setting it to zero means "use the operator-wide period" (``--reconcile-period``,
  10h unless set).
* ``maxRunnerArtifacts: 0`` means the default, 20.
* ``finalizer.keepWhileRequeued`` (ours, default false): a finalizer run that asks for a
  requeue (``requeue_after``) has not finished its work (an asynchronous deprovision, a wait for
  dependents to go): the finalizer stays and the run comes again after that time. In the SDK, and
  here without it, any successful finalizer run removes the finalizer.
* ``runTimeout`` (ours) is a Go duration too: a run still going after it is ended and reported as
  a failure, then retried with backoff. As in the SDK, runs have no time limit by default
  (``--run-timeout``); zero means the operator-wide value.
* Per-kind environment overrides: ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>`` (or the
  older ``WORKER_<KIND>_<GROUP>``) and ``ANSIBLE_VERBOSITY_<KIND>_<GROUP>``, where
  ``<KIND>_<GROUP>`` is upper-cased with dots replaced by underscores (see
  :attr:`Watch.env_suffix`). A value that is not an integer, or out of range, is
  ignored with a warning.
* Roles are found the way the SDK finds them (:func:`role_candidates`); relative
  playbooks are relative to the working directory.

Stricter than the SDK, so mistakes surface at start-up instead of at the first
reconcile: unknown or duplicated keys, wrong types, both ``role`` and ``playbook``,
negative numbers, a finalizer role or playbook that does not exist, and malformed
label selectors or finalizer names are all errors. Every error is a
:class:`WatchesError` naming the entry and the field.

Precedence for the two extensions is: environment variable, then the watches.yaml
field, then the operator-wide default from the command line.
"""

from __future__ import annotations

import difflib
import io
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from runner.basics import durations, selectors

log = logging.getLogger("playbook_operator.watches")

DEFAULT_MAX_RUNNER_ARTIFACTS = 20
DEFAULT_ANSIBLE_VERBOSITY = 2
DEFAULT_RECONCILE_PERIOD = 10 * 3600.0  # the SDK's --reconcile-period default
MAX_ANSIBLE_VERBOSITY = 7

MAX_CONCURRENT_RECONCILES_ENV_PREFIX = "MAX_CONCURRENT_RECONCILES_"
WORKER_ENV_PREFIX = "WORKER_"  # older spelling of the above, still honoured
ANSIBLE_VERBOSITY_ENV_PREFIX = "ANSIBLE_VERBOSITY_"
ANSIBLE_ROLES_PATH_ENV = "ANSIBLE_ROLES_PATH"
ANSIBLE_COLLECTIONS_PATH_ENV = "ANSIBLE_COLLECTIONS_PATH"
SYSTEM_COLLECTIONS_DIR = "/usr/share/ansible/collections"

SELECTOR_OPERATORS = selectors.SELECTOR_OPERATORS


def _cpu_count() -> int:
    return os.cpu_count() or 1


class WatchesError(ValueError):
    """A watches.yaml problem, with the entry and field it concerns when known."""

    def __init__(self, message: str, *, source: str = "watches.yaml", entry: int | None = None,
                 gvk: str = "", field: str = "") -> None:
        self.source = source
        self.entry = entry
        self.gvk = gvk
        self.field = field
        self.reason = message
        where = source
        if entry is not None:
            where += f" entry {entry}"
            if gvk:
                where += f" ({gvk})"
        if field:
            where += f': field "{field}"'
        super().__init__(f"{where}: {message}")


# --- value types -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupVersionKind:
    """A Kubernetes group, version and kind; the group is empty for the core API."""

    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` string: ``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.api_version} {self.kind}"


# Label selectors are the shared ones (`runner.basics`): matching and printing as Kubernetes does.
LabelSelectorRequirement = selectors.Requirement
LabelSelector = selectors.LabelSelector


@dataclass(frozen=True)
class Finalizer:
    """What to run when an object carrying the finalizer ``name`` is deleted.

    With neither ``role`` nor ``playbook`` the watch's own role or playbook runs, with
    ``vars`` added to its extra vars.
    """

    name: str
    role: Path | None = None
    playbook: Path | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    # Ours: a run that asks for a requeue keeps the finalizer (its work is not done).
    keep_while_requeued: bool = False


@dataclass(frozen=True)
class Watch:
    """One watches.yaml entry, validated, with paths resolved and defaults applied.

    Treat the dict-valued fields as read-only: a Watch is shared by every reconcile of
    its kind. Watches hash by group/version/kind, which is unique within a file.
    """

    group: str
    version: str
    kind: str
    role: Path | None = None
    playbook: Path | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    reconcile_period: float = DEFAULT_RECONCILE_PERIOD  # seconds; 0 means no periodic reconcile
    manage_status: bool = True
    watch_dependent_resources: bool = True
    watch_cluster_scoped_resources: bool = False
    max_runner_artifacts: int = DEFAULT_MAX_RUNNER_ARTIFACTS
    finalizer: Finalizer | None = None
    blacklist: tuple[GroupVersionKind, ...] = ()
    selector: LabelSelector = field(default_factory=LabelSelector)
    snake_case_parameters: bool = True
    mark_unsafe: bool = False
    watch_annotations_changes: bool = False
    max_concurrent_reconciles: int = field(default_factory=_cpu_count)
    ansible_verbosity: int = DEFAULT_ANSIBLE_VERBOSITY
    run_timeout: float = 0.0  # seconds a run may take before it is ended; 0: no limit

    def __post_init__(self) -> None:
        if (self.role is None) == (self.playbook is None):
            raise ValueError(f"watch {self.gvk}: exactly one of role or playbook is required")

    def __hash__(self) -> int:
        return hash(self.gvk)

    @property
    def gvk(self) -> GroupVersionKind:
        return GroupVersionKind(self.group, self.version, self.kind)

    @property
    def api_version(self) -> str:
        return self.gvk.api_version

    @property
    def env_suffix(self) -> str:
        """``<KIND>_<GROUP>`` as the per-kind environment overrides spell it."""
        return env_suffix(self.group, self.kind)

    def selects(self, obj: Mapping[str, Any]) -> bool:
        """Whether the watch's label selector selects this object."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return self.selector.matches(labels)


def env_suffix(group: str, kind: str) -> str:
    """``<KIND>_<GROUP>`` upper-cased with dots as underscores: ``MEMCACHED_CACHE_EXAMPLE_COM``.

    Only dots are replaced, as the SDK does; a group with dashes keeps them.
    """
    return f"{kind}_{group}".replace(".", "_").upper()


@dataclass(frozen=True)
class WatchDefaults:
    """Operator-wide defaults (from the command line) for what an entry leaves unset; read with
    the other settings into ``OperatorSettings.watching.defaults``.

    ``reconcile_period`` and ``run_timeout`` are seconds or Go duration strings; ``None`` means
    10h for the first and no limit for the second.
    """

    max_concurrent_reconciles: int = field(default_factory=_cpu_count)
    ansible_verbosity: int = DEFAULT_ANSIBLE_VERBOSITY
    reconcile_period: float | str | None = None
    run_timeout: float | str | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.max_concurrent_reconciles) or self.max_concurrent_reconciles < 1:
            raise WatchesError(f"must be an integer >= 1, got {self.max_concurrent_reconciles!r}",
                               source="default max concurrent reconciles")
        if not _is_int(self.ansible_verbosity) or not 0 <= self.ansible_verbosity <= MAX_ANSIBLE_VERBOSITY:
            raise WatchesError(f"must be an integer from 0 to {MAX_ANSIBLE_VERBOSITY}, "
                               f"got {self.ansible_verbosity!r}", source="default ansible verbosity")
        self.reconcile_period_seconds()  # fail now rather than at load time
        self.run_timeout_seconds()

    def reconcile_period_seconds(self) -> float:
        """The default reconcile period in seconds."""
        return _default_seconds(self.reconcile_period, DEFAULT_RECONCILE_PERIOD, "default reconcile period")

    def run_timeout_seconds(self) -> float:
        """The default run timeout in seconds; 0 for none."""
        return _default_seconds(self.run_timeout, 0.0, "default run timeout")


def _default_seconds(value: float | str | None, default: float, source: str) -> float:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            raise WatchesError(str(err), source=source) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise WatchesError(f"must be seconds or a duration string, got {value!r}", source=source)
    if seconds < 0:
        raise WatchesError(f"must not be negative, got {value!r}", source=source)
    return seconds


# --- Go-compatible scalars ---------------------------------------------------------------------------

_GO_INT = re.compile(r"[+-]?[0-9]+")

# Go durations are the shared ones (`runner.basics`); a DurationError is a ValueError.
parse_duration = durations.parse_duration


def parse_go_int(text: str) -> int | None:
    """An integer as Go's ``strconv.Atoi`` reads it (ASCII digits, optional sign), else None."""
    return int(text) if _GO_INT.fullmatch(text) else None


_SHELL_SPECIAL = frozenset("*#$@!?-0123456789")


def expand_env(text: str, env: Mapping[str, str]) -> str:
    """Replace ``$NAME`` and ``${NAME}`` with values from ``env``, as Go's ``os.Expand`` reads them.

    A name is a run of ASCII letters, digits and underscores, a single special character
    (``$1``, ``$$``), or anything between braces. References to unset variables, and
    malformed ones, are left exactly as written.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        dollar = text.find("$", i)
        if dollar < 0 or dollar + 1 >= len(text):
            break
        out.append(text[i:dollar])
        name, width = _reference_at(text, dollar + 1)
        if name is None:
            out.append("$")
            i = dollar + 1
            continue
        ref_end = dollar + 1 + width
        value = env.get(name)
        out.append(text[dollar:ref_end] if value is None else value)
        i = ref_end
    out.append(text[i:])
    return "".join(out)


def _reference_at(text: str, start: int) -> tuple[str | None, int]:
    """The variable name referenced right after a ``$`` at ``start - 1``, and the characters it spans."""
    first = text[start]
    if first == "{":
        close = text.find("}", start + 1)
        if close <= start + 1:  # "${}" or no closing brace: not a reference
            return None, 0
        return text[start + 1:close], close - start + 1
    if first in _SHELL_SPECIAL:
        return first, 1
    end = start
    while end < len(text) and (text[end] == "_" or (text[end].isascii() and text[end].isalnum())):
        end += 1
    return (text[start:end], end - start) if end > start else (None, 0)


# --- role and playbook resolution --------------------------------------------------------------------


def _split_search_path(value: str) -> list[str]:
    return [part for part in value.split(":") if part]


def _anchor(base_dir: Path, path: str) -> Path:
    return Path(os.path.normpath(base_dir / path))


def role_candidates(role: str, *, base_dir: str | os.PathLike[str], env: Mapping[str, str]) -> list[Path]:
    """Where a role named in watches.yaml may live, in the order they are tried.

    1. An absolute path is used as it is, and nothing else is tried.
    2. A collection role ``namespace.collection.role`` is looked for in
       ``<dir>/ansible_collections/<namespace>/<collection>/roles/<role>`` for each dir of
       ``ANSIBLE_COLLECTIONS_PATH`` (colon-separated) or, when that is unset or empty,
       ``/usr/share/ansible/collections`` then ``$HOME/.ansible/collections``.
    3. Each dir of ``ANSIBLE_ROLES_PATH``: ``<dir>/<role>``, then ``<dir>/roles/<role>``.
    4. ``<base_dir>/roles/<role>``, then ``<base_dir>/<role>``.

    Relative search-path entries are taken relative to ``base_dir``. HOME comes from ``env``.
    """
    base = Path(os.path.abspath(base_dir))
    if os.path.isabs(role):
        return [Path(os.path.normpath(role))]
    candidates: list[Path] = []
    parts = role.split(".")
    if len(parts) == 3 and all(parts) and "/" not in role:
        configured = env.get(ANSIBLE_COLLECTIONS_PATH_ENV, "")
        if configured:
            collection_dirs = _split_search_path(configured)
        else:
            collection_dirs = [SYSTEM_COLLECTIONS_DIR]
            if env.get("HOME"):
                collection_dirs.append(os.path.join(env["HOME"], ".ansible", "collections"))
        namespace, collection, name = parts
        candidates += [_anchor(base, os.path.join(parent, "ansible_collections", namespace, collection,
                                                  "roles", name))
                       for parent in collection_dirs]
    for parent in _split_search_path(env.get(ANSIBLE_ROLES_PATH_ENV, "")):
        candidates.append(_anchor(base, os.path.join(parent, role)))
        candidates.append(_anchor(base, os.path.join(parent, "roles", role)))
    candidates.append(_anchor(base, os.path.join("roles", role)))
    candidates.append(_anchor(base, role))
    return candidates


def resolve_role(role: str, *, base_dir: str | os.PathLike[str], env: Mapping[str, str]) -> Path | None:
    """The first of :func:`role_candidates` that is a directory, or None."""
    return next((path for path in role_candidates(role, base_dir=base_dir, env=env) if path.is_dir()), None)


def resolve_playbook(playbook: str, *, base_dir: str | os.PathLike[str]) -> Path:
    """The playbook's absolute path: as given when absolute, else relative to ``base_dir``.

    Existence is not checked here.
    """
    return _anchor(Path(os.path.abspath(base_dir)), playbook)


# --- loading -----------------------------------------------------------------------------------------


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _check_unique_keys(root: yaml.Node | None) -> None:
    """Refuse a mapping that gives the same key twice (a likely typo or paste error)."""
    pending = [root] if root is not None else []
    visited: set[int] = set()
    while pending:
        node = pending.pop()
        if id(node) in visited:  # aliases may share or nest nodes
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                pending += [key_node, value_node]
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add((key_node.tag, key_node.value))
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value


class _NamedText(io.StringIO):
    """Text that YAML error messages call by the file's name."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def _load_yaml(text: str, source: str) -> Any:
    _check_unique_keys(yaml.compose(_NamedText(text, source), Loader=yaml.SafeLoader))
    return yaml.safe_load(_NamedText(text, source))


_WATCH_KEYS = (
    "group", "version", "kind", "role", "playbook", "vars", "reconcilePeriod", "manageStatus",
    "watchDependentResources", "watchClusterScopedResources", "maxRunnerArtifacts", "finalizer",
    "blacklist", "selector", "snakeCaseParameters", "markUnsafe", "watchAnnotationsChanges",
    "maxConcurrentReconciles", "ansibleVerbosity", "runTimeout",
)
_FINALIZER_KEYS = ("name", "role", "playbook", "vars", "keepWhileRequeued")
_GVK_KEYS = ("group", "version", "kind")
_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_REQUIREMENT_KEYS = ("key", "operator", "values")

def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class _Entry:
    """Reads one watches.yaml entry; every problem becomes a WatchesError naming entry and field."""

    def __init__(self, source: str, number: int, raw: Mapping[Any, Any]) -> None:
        self.source = source
        self.number = number
        self.raw = raw
        self.gvk = ""

    def fail(self, field: str, message: str) -> NoReturn:
        raise WatchesError(message, source=self.source, entry=self.number, gvk=self.gvk, field=field)

    def check_keys(self, mapping: Mapping[Any, Any], allowed: Sequence[str], where: str) -> None:
        for key in mapping:
            if not isinstance(key, str):
                self.fail(where, f"keys must be strings, got {key!r}")
            if key not in allowed:
                label = f"{where}.{key}" if where else key
                close = [name for name in allowed if name.lower() == key.lower()]
                close = close or difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(allowed)}"
                self.fail(label, f"unknown field; {hint}")

    def string(self, mapping: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
        value = mapping.get(key)
        if value is None or value == "":
            if required:
                self.fail(where, "is required and must be a non-empty string")
            return ""
        if not isinstance(value, str):
            self.fail(where, f"must be a string, got {_type_name(value)} ({value!r})")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_type_name(value)} ({value!r})")
        return value

    def integer(self, key: str, minimum: int, maximum: int | None = None) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not _is_int(value):
            self.fail(key, f"must be an integer, got {_type_name(value)} ({value!r})")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            self.fail(key, f"must be {bound}, got {value}")
        return int(value)

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {_type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail(where, f"keys must be strings, got {key!r}")
        return value

    def gvk_of(self, value: Any, where: str) -> GroupVersionKind:
        raw = self.mapping(value, where)
        self.check_keys(raw, _GVK_KEYS, where)
        return GroupVersionKind(self.string(raw, "group", f"{where}.group"),
                                self.string(raw, "version", f"{where}.version", required=True),
                                self.string(raw, "kind", f"{where}.kind", required=True))


def _read_gvk(entry: _Entry) -> GroupVersionKind:
    raw = entry.raw
    # Name the entry in later messages with whatever part of its GVK is readable.
    group, version, kind = (raw.get(key) for key in _GVK_KEYS)
    if isinstance(version, str) and isinstance(kind, str):
        entry.gvk = f"{group}/{version} {kind}" if isinstance(group, str) and group else f"{version} {kind}"
    elif isinstance(kind, str):
        entry.gvk = kind
    return GroupVersionKind(entry.string(raw, "group", "group"),
                            entry.string(raw, "version", "version", required=True),
                            entry.string(raw, "kind", "kind", required=True))


def _read_target(entry: _Entry, raw: Mapping[str, Any], where: str, *, base_dir: Path,
                 env: Mapping[str, str], required: bool) -> tuple[Path | None, Path | None]:
    prefix = f"{where}." if where else ""
    role = entry.string(raw, "role", f"{prefix}role")
    playbook = entry.string(raw, "playbook", f"{prefix}playbook")
    if role and playbook:
        entry.fail(f"{prefix}role", "role and playbook are mutually exclusive; give one")
    if role:
        found = resolve_role(role, base_dir=base_dir, env=env)
        if found is None:
            tried = ", ".join(str(path) for path in role_candidates(role, base_dir=base_dir, env=env))
            entry.fail(f"{prefix}role", f"role {role!r} not found; looked in: {tried}")
        return found, None
    if playbook:
        path = resolve_playbook(playbook, base_dir=base_dir)
        if not path.is_file():
            entry.fail(f"{prefix}playbook", f"playbook {playbook!r} not found at {path}")
        return None, path
    if required:
        entry.fail("role", "one of role or playbook is required")
    return None, None


def _read_duration(entry: _Entry, key: str, default: float) -> float:
    """reconcilePeriod, runTimeout: a Go duration string."""
    value = entry.raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        entry.fail(key, f'must be a duration string such as "30s" or "1h30m", got {_type_name(value)} ({value!r})')
    try:
        seconds = parse_duration(value)
    except ValueError:
        entry.fail(key, f'invalid duration "{value}" (use e.g. "30s", "5m", "1h30m")')
    if seconds < 0:
        entry.fail(key, f'must not be negative, got "{value}"')
    # Zero is how the SDK spells "not set": the operator-wide value applies.
    return seconds or default


def _read_finalizer(entry: _Entry, *, base_dir: Path, env: Mapping[str, str]) -> Finalizer | None:
    value = entry.raw.get("finalizer")
    if value is None:
        return None
    raw = entry.mapping(value, "finalizer")
    entry.check_keys(raw, _FINALIZER_KEYS, "finalizer")
    name = entry.string(raw, "name", "finalizer.name", required=True)
    problem = selectors.qualified_name_problem(name)
    if problem:
        entry.fail("finalizer.name", f"{name!r} is not a valid finalizer name: {problem}")
    role, playbook = _read_target(entry, raw, "finalizer", base_dir=base_dir, env=env, required=False)
    variables = entry.mapping(raw.get("vars"), "finalizer.vars")
    if role is None and playbook is None and not variables:
        entry.fail("finalizer", "needs a role, a playbook or vars (vars alone re-run the watch's own "
                                "role or playbook with those vars)")
    keep = raw.get("keepWhileRequeued", False)
    if not isinstance(keep, bool):
        entry.fail("finalizer.keepWhileRequeued", f"must be true or false, got {_type_name(keep)} ({keep!r})")
    return Finalizer(name=name, role=role, playbook=playbook, vars=variables, keep_while_requeued=keep)


def _read_blacklist(entry: _Entry) -> tuple[GroupVersionKind, ...]:
    value = entry.raw.get("blacklist")
    if value is None:
        return ()
    if not isinstance(value, list):
        entry.fail("blacklist", f"must be a list of group/version/kind, got {_type_name(value)}")
    return tuple(entry.gvk_of(item, f"blacklist[{i}]") for i, item in enumerate(value))


def _read_selector(entry: _Entry) -> LabelSelector:
    raw = entry.mapping(entry.raw.get("selector"), "selector")
    entry.check_keys(raw, _SELECTOR_KEYS, "selector")
    expressions = raw.get("matchExpressions")
    for i, item in enumerate(expressions if isinstance(expressions, list) else []):
        if isinstance(item, dict):
            entry.check_keys(item, _REQUIREMENT_KEYS, f"selector.matchExpressions[{i}]")
    try:
        return selectors.label_selector(raw)
    except selectors.SelectorError as err:
        entry.fail(f"selector.{err.field}" if err.field else "selector", err.reason)


def _env_int(env: Mapping[str, str], name: str, valid: Callable[[int], bool], fallback: int) -> int:
    """An integer from the environment, or ``fallback`` (with a warning) when unset or unusable."""
    text = env.get(name)
    if text is None:
        return fallback
    number = parse_go_int(text)
    if number is None or not valid(number):
        log.warning("ignoring environment variable %s=%r: not a valid value; using %d", name, text, fallback)
        return fallback
    return number


def _max_concurrent_reconciles(entry: _Entry, suffix: str, env: Mapping[str, str], default: int) -> int:
    fallback = entry.integer("maxConcurrentReconciles", 1)
    fallback = default if fallback is None else fallback
    name = MAX_CONCURRENT_RECONCILES_ENV_PREFIX + suffix
    if name not in env and WORKER_ENV_PREFIX + suffix in env:
        log.warning("environment variable %s is deprecated, use %s instead", WORKER_ENV_PREFIX + suffix, name)
        name = WORKER_ENV_PREFIX + suffix
    return _env_int(env, name, lambda n: n >= 1, fallback)


def _ansible_verbosity(entry: _Entry, suffix: str, env: Mapping[str, str], default: int) -> int:
    fallback = entry.integer("ansibleVerbosity", 0, MAX_ANSIBLE_VERBOSITY)
    fallback = default if fallback is None else fallback
    return _env_int(env, ANSIBLE_VERBOSITY_ENV_PREFIX + suffix,
                    lambda n: 0 <= n <= MAX_ANSIBLE_VERBOSITY, fallback)


def _read_watch(entry: _Entry, *, base_dir: Path, env: Mapping[str, str], defaults: WatchDefaults,
                default_period: float) -> Watch:
    gvk = _read_gvk(entry)
    entry.check_keys(entry.raw, _WATCH_KEYS, "")
    role, playbook = _read_target(entry, entry.raw, "", base_dir=base_dir, env=env, required=True)
    artifacts = entry.integer("maxRunnerArtifacts", 0)
    suffix = env_suffix(gvk.group, gvk.kind)
    return Watch(
        group=gvk.group,
        version=gvk.version,
        kind=gvk.kind,
        role=role,
        playbook=playbook,
        vars=entry.mapping(entry.raw.get("vars"), "vars"),
        reconcile_period=_read_duration(entry, "reconcilePeriod", default_period),
        manage_status=entry.boolean("manageStatus", True),
        watch_dependent_resources=entry.boolean("watchDependentResources", True),
        watch_cluster_scoped_resources=entry.boolean("watchClusterScopedResources", False),
        # Zero means the default, as in the SDK; a CR annotation can still ask to keep everything.
        max_runner_artifacts=artifacts or DEFAULT_MAX_RUNNER_ARTIFACTS,
        finalizer=_read_finalizer(entry, base_dir=base_dir, env=env),
        blacklist=_read_blacklist(entry),
        selector=_read_selector(entry),
        snake_case_parameters=entry.boolean("snakeCaseParameters", True),
        mark_unsafe=entry.boolean("markUnsafe", False),
        watch_annotations_changes=entry.boolean("watchAnnotationsChanges", False),
        max_concurrent_reconciles=_max_concurrent_reconciles(entry, suffix, env,
                                                             defaults.max_concurrent_reconciles),
        ansible_verbosity=_ansible_verbosity(entry, suffix, env, defaults.ansible_verbosity),
        run_timeout=_read_duration(entry, "runTimeout", defaults.run_timeout_seconds()),
    )


def parse_watches(text: str, *, source: str = "watches.yaml", env: Mapping[str, str],
                  defaults: WatchDefaults | None = None,
                  base_dir: str | os.PathLike[str] | None = None) -> list[Watch]:
    """Validate watches.yaml content; see :func:`load_watches`. ``source`` names it in errors."""
    defaults = defaults or WatchDefaults()
    default_period = defaults.reconcile_period_seconds()
    base = Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))
    try:
        document = _load_yaml(expand_env(text, env), source)
    except yaml.YAMLError as err:
        raise WatchesError(f"not valid YAML: {err}", source=source) from None
    if document is None:
        raise WatchesError("has no entries; expected a list of watches", source=source)
    if not isinstance(document, list):
        raise WatchesError(f"must be a list of watches, got {_type_name(document)}", source=source)
    if not document:
        raise WatchesError("has no entries; expected a list of watches", source=source)
    watches: list[Watch] = []
    first_seen: dict[GroupVersionKind, int] = {}
    for number, raw in enumerate(document, start=1):
        if not isinstance(raw, dict):
            raise WatchesError(f"must be a mapping, got {_type_name(raw)}", source=source, entry=number)
        entry = _Entry(source, number, raw)
        watch = _read_watch(entry, base_dir=base, env=env, defaults=defaults, default_period=default_period)
        if watch.gvk in first_seen:
            entry.fail("", f"duplicate group/version/kind, already watched by entry {first_seen[watch.gvk]}")
        first_seen[watch.gvk] = number
        watches.append(watch)
    return watches


def load_watches(path: str | os.PathLike[str], *, env: Mapping[str, str],
                 defaults: WatchDefaults | None = None,
                 base_dir: str | os.PathLike[str] | None = None) -> list[Watch]:
    """Load and validate a watches.yaml file, in file order.

    ``env`` (``OperatorSettings.environment``) supplies ``$VAR`` expansion, the per-kind
    overrides, ``ANSIBLE_ROLES_PATH``, ``ANSIBLE_COLLECTIONS_PATH`` and ``HOME``. Relative
    roles and playbooks are resolved against ``base_dir``, by default the current directory
    (as the SDK does; in the operator image that is also where watches.yaml lives). Raises
    :class:`WatchesError`.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise WatchesError(f"cannot read the watches file: {err.strerror or err}", source=source) from err
    except UnicodeDecodeError as err:
        raise WatchesError(f"not UTF-8 text: {err}", source=source) from None
    return parse_watches(text, source=source, env=env, defaults=defaults, base_dir=base_dir)
