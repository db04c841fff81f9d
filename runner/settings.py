"""The operator's settings: every flag, every environment variable it interprets, every default.

They are read here, once, into one frozen :class:`OperatorSettings` (in groups, as kopf's
``OperatorSettings`` has sections), and handed on; no other module reads a flag or the
environment for the operator's own use. The flags of ``run`` and ``reconcile`` are declared
here too (:data:`RUN_FLAGS`, :data:`RECONCILE_FLAGS`), so that ``--help`` names the default and
the environment variable of each from the same place the settings take them. Flag names and
defaults follow the Operator SDK's ansible-operator where it has them.

Ansible's own variables (``ANSIBLE_*`` and the rest) pass through to Ansible untouched. The
environment is still read elsewhere on purpose, and only for these:

* ``ansible.py``, ``warm.py``, ``forkserver.py`` and ``plugins/connection/warm_local.py`` copy
  the operator's environment to the processes of a run (ansible-runner's child, the shims, a
  forked job), putting the operator's own entries first on ``PYTHONPATH`` and
  ``ANSIBLE_CONNECTION_PLUGINS``, and last on ``ANSIBLE_COLLECTIONS_PATH`` (a fallback behind the
  user's collections);
* ``ownerrefs.py`` reads ``PLAYBOOK_OPERATOR_OWNER`` and ``PLAYBOOK_OPERATOR_DEPENDENTS`` inside
  a run's own processes: the contract between the operator (``reconcile.run_env`` sets them)
  and those processes, not a setting of the operator;
* the kubernetes client and :mod:`tempfile` read ``KUBECONFIG`` and ``TMPDIR`` for themselves.

``tests/unit/test_settings.py`` fails when another module starts reading the environment.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.watches import (
    ANSIBLE_VERBOSITY_ENV_PREFIX,
    DEFAULT_RECONCILE_PERIOD,
    MAX_CONCURRENT_RECONCILES_ENV_PREFIX,
    WORKER_ENV_PREFIX,
    WatchDefaults,
    parse_duration,
)

# --- the environment variables the operator interprets -----------------------------------------------

WATCH_NAMESPACE_ENV = "WATCH_NAMESPACE"
POD_NAMESPACE_ENV = "POD_NAMESPACE"
OPERATOR_NAME_ENV = "OPERATOR_NAME"
COMMIT_ENV = "PLAYBOOK_OPERATOR_COMMIT"
KUBECONFIG_ENV = "KUBECONFIG"

# --- defaults ----------------------------------------------------------------------------------------
# What a watches.yaml entry leaves unset defaults to WatchDefaults' own fields (the number of CPUs,
# verbosity 2, the period below); the rest are here.

WATCHES_FILE = "./watches.yaml"
RUN_ARTIFACTS_DIR = "runner"  # under $TMPDIR/playbook-operator
RECONCILE_ARTIFACTS_DIR = "reconcile"
RECONCILE_ANSIBLE_VERBOSITY = 0  # `reconcile -f` prints each task itself
METRICS_BIND_ADDRESS = ":8080"
HEALTH_PROBE_BIND_ADDRESS = ":6789"
# Where runs POST their osdk_metric requests: the SDK's address, which its operator_sdk.util
# module has built in.
USER_METRICS_BIND_ADDRESS = "localhost:5050"
# controller-runtime's (and the SDK's --leader-elect-lease-duration, -renew-deadline, -retry-period).
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
# client-go's JitterFactor: standbys retry after retry_period * [1, 1 + JITTER).
JITTER = 1.2
LOG_FORMATS = ("text", "json")
LOG_FORMAT = "text"
LOG_LEVEL = "INFO"
# Where a pod finds its own namespace.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

_WATCH_DEFAULTS = WatchDefaults()


def artifacts_root(kind: str = RUN_ARTIFACTS_DIR) -> Path:
    """``$TMPDIR/playbook-operator/<kind>``: where ansible-runner's artifacts go unless told."""
    return Path(tempfile.gettempdir()) / "playbook-operator" / kind


# --- value types -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BindAddress:
    """Where an HTTP endpoint listens."""

    host: str | None  # None: every interface
    port: int

    def __str__(self) -> str:
        host = self.host or ""
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def parse_bind_address(text: str) -> BindAddress | None:
    """``HOST:PORT`` or ``:PORT`` into a BindAddress; ``0`` (or nothing) into None: disabled.

    Addresses are spelt as controller-runtime spells them. Raises ValueError for anything else.
    """
    text = text.strip()
    if text in ("", "0"):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid bind address {text!r}: want HOST:PORT, :PORT or 0")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"invalid bind address {text!r}: an IPv6 host goes in brackets, [::1]:PORT")
    return BindAddress(host or None, int(port))


def zap_level(text: str) -> str:
    """controller-runtime's ``--zap-log-level`` as a Python level name: ``debug``, ``info``,
    ``error`` or ``panic``, or an integer verbosity (1 is debug; more is more verbose, and all of it
    is DEBUG here)."""
    names = {"debug": "DEBUG", "info": "INFO", "error": "ERROR", "dpanic": "CRITICAL", "panic": "CRITICAL"}
    lowered = text.strip().lower()
    if lowered in names:
        return names[lowered]
    if lowered.isdigit() and int(lowered) > 0:
        return "DEBUG"
    raise argparse.ArgumentTypeError(f"expected debug, info, error, panic or an integer above 0, got {text!r}")


def logging_of(args: argparse.Namespace) -> Logging:
    """``--log-format`` and ``--log-level``, unless the SDK's zap flags (which its scaffolded
    manager.yaml and kustomize patches pass) say otherwise: ``--zap-devel`` is debug in text,
    ``--zap-log-level`` and ``--zap-encoder`` override both."""
    level, fmt = args.log_level, args.log_format
    if args.zap_devel:
        level, fmt = "DEBUG", "text"
    if args.zap_log_level:
        level = args.zap_log_level
    if args.zap_encoder:
        fmt = "json" if args.zap_encoder == "json" else "text"
    return Logging(format=fmt, level=level)


def parse_boolean(text: str) -> bool:
    """``true``/``false`` (or ``1``/``0``, ``yes``/``no``), as the SDK's boolean flags take them."""
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# --- the groups --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """Leader election's timings, in seconds. Validated as client-go validates them:
    lease duration > renew deadline > jitter * retry period > 0."""

    lease_duration: float = LEASE_DURATION
    """``--leader-elect-lease-duration``: how long a standby waits before taking a lease that was
    not renewed."""
    renew_deadline: float = RENEW_DEADLINE
    """``--leader-elect-renew-deadline``: how long the leader keeps trying to renew before it stops."""
    retry_period: float = RETRY_PERIOD
    """``--leader-elect-retry-period``: how often the lease is renewed, or tried for."""

    def __post_init__(self) -> None:
        if min(self.lease_duration, self.renew_deadline, self.retry_period) <= 0:
            raise ValueError("lease duration, renew deadline and retry period must be positive")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(f"the lease duration ({self.lease_duration}s) must be longer than the renew deadline "
                             f"({self.renew_deadline}s)")
        if self.renew_deadline <= JITTER * self.retry_period:
            raise ValueError(f"the renew deadline ({self.renew_deadline}s) must be longer than {JITTER} times the "
                             f"retry period ({self.retry_period}s)")

    @property
    def lease_seconds(self) -> int:
        """``leaseDurationSeconds`` is whole seconds: round up, never shorten the promise."""
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True)
class LeaderElection:
    """Whether and where this replica takes part in leader election."""

    enabled: bool = False
    """``--leader-elect``: only the holder of the Lease watches and reconciles."""
    id: str = ""
    """``--leader-election-id``, else ``$OPERATOR_NAME``: the Lease's name. Empty: a name made
    from the watched kinds (``leader.default_lease_id``), known once watches.yaml is read."""
    namespace: str | None = None
    """``--leader-election-namespace``, else the pod's own namespace (its service account's), else
    ``$POD_NAMESPACE``; None outside a cluster, where leader election then needs the flag."""
    timings: Timings = field(default_factory=Timings)
    """The lease duration, renew deadline and retry period."""


@dataclass(frozen=True)
class Sharding:
    """Whether this replica is one of several that split the objects (`runner.shards`)."""

    enabled: bool = False
    """``--sharding``: every replica holds a Lease of its own, and each reconciles only its slice
    of the objects; the Leases' namespace, name prefix and timings are leader election's."""
    member: str = ""
    """``--sharding-member``: this replica's name among the members, in its Lease's name; the
    host name (a pod's name) by default, so a restarted container takes its own Lease back."""


def unquoted_ansible_args(text: str) -> str:
    """``--ansible-args`` as the SDK takes it: the single quotes its own manager.yaml puts around
    the value (``--ansible-args='--vault-password-file /opt/ansible/pwd.yml'``, where no shell
    removes them) are dropped, so the arguments are split as separate words again."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return text


def member_name(text: str) -> str:
    """A member name as a Lease name may end: lower case, letters, digits, '-' and '.', at most 63."""
    name = text.strip().lower()
    if not name or len(name) > 63 or not all(c.isalnum() or c in "-." for c in name) \
            or not name[0].isalnum() or not name[-1].isalnum():
        raise ValueError(f"--sharding-member {text!r}: use lower-case letters, digits, '-' and '.', at most 63, "
                         "starting and ending with a letter or digit")
    return name


@dataclass(frozen=True)
class Watching:
    """What is watched, and what a watches.yaml entry leaves unset."""

    watches_file: str = WATCHES_FILE
    """``--watches-file``: the watches.yaml, as given."""
    namespaces: tuple[str, ...] = ()
    """``$WATCH_NAMESPACE``, comma-separated: the only namespaces watched; empty for all of them."""
    defaults: WatchDefaults = field(default_factory=WatchDefaults)
    """``--max-concurrent-reconciles``, ``--ansible-verbosity``, ``--reconcile-period``, ``--run-timeout``: the
    operator-wide values of what an entry leaves unset (``runner.watches``, which also applies the
    per-kind ``MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>`` and ``ANSIBLE_VERBOSITY_<KIND>_<GROUP>``
    from :attr:`OperatorSettings.environment`)."""


@dataclass(frozen=True)
class AnsibleSettings:
    """How each Ansible run is made."""

    args: str = ""
    """``--ansible-args``: extra arguments for every ansible-playbook run."""
    artifacts_dir: Path = field(default_factory=artifacts_root)
    """``--ansible-artifacts-dir``: where ansible-runner's artifacts go."""
    inject_owner_ref: bool = True
    """``--inject-owner-ref``: owner references on what roles create (the SDK proxy's flag)."""
    warm: bool = True
    """``--warm-ansible``: Ansible and its modules run in warm fork servers; false runs a cold
    ansible-playbook and a fresh interpreter per task, as the SDK does."""
    check: bool = False
    """``reconcile --check``: a dry run, reporting changes without making them."""
    diff: bool = False
    """``reconcile --diff``: show what each task changes or would change."""
    verbosity: int | None = None
    """``reconcile --ansible-verbosity``: one verbosity for the run, whatever the watch says.
    None (``run``): each watch's own."""
    cache_reads: bool = True
    """``--cache-reads``: runs talk to the operator's API endpoint (`runner.apiproxy`), which
    answers their reads of watched kinds from the watch cache; false: they talk to the
    apiserver themselves, with the operator's kubeconfig."""
    kubeconfig: str = ""
    """``$KUBECONFIG``, handed to each run's modules as ``K8S_AUTH_KUBECONFIG`` (the operator's own
    client reads it for itself); empty: the modules find the cluster as the client does."""


@dataclass(frozen=True)
class Serving:
    """The operator's HTTP endpoints."""

    metrics_address: BindAddress | None = field(
        default_factory=lambda: parse_bind_address(METRICS_BIND_ADDRESS))
    """``--metrics-bind-address``: where ``/metrics`` is served; None: not served."""
    health_address: BindAddress | None = field(
        default_factory=lambda: parse_bind_address(HEALTH_PROBE_BIND_ADDRESS))
    """``--health-probe-bind-address``: where ``/healthz`` and ``/readyz`` are served; None: not served."""
    user_metrics_address: BindAddress | None = field(
        default_factory=lambda: parse_bind_address(USER_METRICS_BIND_ADDRESS))
    """``--user-metrics-bind-address``: where runs POST ``osdk_metric`` requests (`runner.usermetrics`);
    None: not served, and the module records nothing."""
    metrics_secure: bool = False
    """``--metrics-secure``: ``/metrics`` over HTTPS, with a self-signed certificate."""
    metrics_require_rbac: bool = False
    """``--metrics-require-rbac``: a scrape's token must be allowed to ``get`` ``/metrics``."""


@dataclass(frozen=True)
class Logging:
    """How the operator logs."""

    format: str = LOG_FORMAT
    """``--log-format``: ``text`` or ``json`` (one object per line)."""
    level: str = LOG_LEVEL
    """``--log-level``: a Python logging level name."""


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator was told, read once at start-up; see :meth:`from_args`."""

    watching: Watching = field(default_factory=Watching)
    ansible: AnsibleSettings = field(default_factory=AnsibleSettings)
    leader_election: LeaderElection = field(default_factory=LeaderElection)
    sharding: Sharding = field(default_factory=Sharding)
    serving: Serving = field(default_factory=Serving)
    logging: Logging = field(default_factory=Logging)
    commit: str = ""
    """``$PLAYBOOK_OPERATOR_COMMIT``: the commit the build info metric names; empty: ``unknown``."""
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    """The environment the settings were read from, read-only. watches.yaml is read with it: its
    ``$NAME`` references, the per-kind overrides, and ``ANSIBLE_ROLES_PATH``,
    ``ANSIBLE_COLLECTIONS_PATH`` and ``HOME`` for finding roles."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """The settings of ``run`` or ``reconcile`` (``args.command``) from their parsed flags and
        ``env`` (the process's environment unless given). Raises ValueError (a
        ``WatchesError`` for the watches' defaults) naming what is wrong."""
        environment: Mapping[str, str] = MappingProxyType(dict(os.environ if env is None else env))
        reconcile = getattr(args, "command", "run") == "reconcile"
        watching = Watching(
            watches_file=args.watches_file,
            namespaces=tuple(n.strip() for n in environment.get(WATCH_NAMESPACE_ENV, "").split(",") if n.strip()),
            # `reconcile -f` runs one object once, at its own --ansible-verbosity.
            defaults=WatchDefaults(
                max_concurrent_reconciles=1 if reconcile else args.max_concurrent_reconciles,
                ansible_verbosity=args.ansible_verbosity,
                reconcile_period=None if reconcile else args.reconcile_period,
                run_timeout=None if reconcile else args.run_timeout,
            ),
        )
        kubeconfig = environment.get(KUBECONFIG_ENV, "")
        commit = environment.get(COMMIT_ENV, "")
        if reconcile:
            ansible = AnsibleSettings(artifacts_dir=artifacts_root(RECONCILE_ARTIFACTS_DIR), check=args.check,
                                      diff=args.diff, verbosity=args.ansible_verbosity, kubeconfig=kubeconfig)
            return cls(watching=watching, ansible=ansible, commit=commit, environment=environment)

        ansible = AnsibleSettings(
            args=unquoted_ansible_args(args.ansible_args),
            artifacts_dir=Path(args.ansible_artifacts_dir) if args.ansible_artifacts_dir else artifacts_root(),
            inject_owner_ref=args.inject_owner_ref, warm=args.warm_ansible, cache_reads=args.cache_reads,
            kubeconfig=kubeconfig)
        serving = Serving(metrics_address=parse_bind_address(args.metrics_bind_address),
                          health_address=parse_bind_address(args.health_probe_bind_address),
                          user_metrics_address=parse_bind_address(args.user_metrics_bind_address),
                          metrics_secure=args.metrics_secure, metrics_require_rbac=args.metrics_require_rbac)
        if serving.metrics_require_rbac and not serving.metrics_secure:
            raise ValueError("--metrics-secure is required with --metrics-require-rbac: a token must not cross "
                             "the network in clear")
        timings = Timings(args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
                          args.leader_elect_retry_period)
        namespace = args.leader_election_namespace or default_lease_namespace(environment)
        if args.leader_elect and args.sharding:
            raise ValueError("--leader-elect and --sharding exclude each other: with --leader-elect one replica "
                             "reconciles everything, with --sharding every replica reconciles its share")
        if (args.leader_elect or args.sharding) and not namespace:
            flag = "--leader-elect" if args.leader_elect else "--sharding"
            raise ValueError(f"--leader-election-namespace is required with {flag} outside a cluster")
        election = LeaderElection(enabled=args.leader_elect,
                                  id=args.leader_election_id or environment.get(OPERATOR_NAME_ENV) or "",
                                  namespace=namespace, timings=timings)
        sharding = Sharding(enabled=args.sharding, member=member_name(args.sharding_member or socket.gethostname())
                            if args.sharding else "")
        return cls(watching=watching, ansible=ansible, leader_election=election, sharding=sharding, serving=serving,
                   logging=logging_of(args), commit=commit,
                   environment=environment)


def default_lease_namespace(env: Mapping[str, str], service_account_file: Path | None = None) -> str | None:
    """The pod's namespace (in a cluster), else ``POD_NAMESPACE``, else None."""
    try:
        namespace = (service_account_file or SERVICE_ACCOUNT_NAMESPACE).read_text().strip()
    except OSError:
        namespace = ""
    return namespace or env.get(POD_NAMESPACE_ENV) or None


# --- the flags ---------------------------------------------------------------------------------------


def _duration_text(seconds: float) -> str:
    """A default duration as --help shows it: ``10h``, ``15s``."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Flag:
    """One command-line flag: its help, its default and the environment variable behind it."""

    name: str
    help: str
    default: Any = None
    shown: str = ""
    """The default as --help names it, when not the value itself."""
    env: str = ""
    """The environment variable that stands in for the flag (or overrides it per watch)."""
    type: Callable[[str], Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Further argparse options: metavar, choices, action."""

    def help_text(self) -> str:
        shown = self.shown or (str(self.default).lower() if isinstance(self.default, bool) else str(self.default))
        env = f"; env: {self.env}" if self.env else ""
        return f"{self.help} (default: {shown}{env})"

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        kwargs = dict(self.options)
        if self.type is not None:
            kwargs["type"] = self.type
        parser.add_argument(self.name, default=self.default, help=self.help_text().replace("%", "%%"), **kwargs)


_PER_KIND = "<KIND>_<GROUP>"

WATCHES_FILE_FLAG = Flag("--watches-file", "path to the watches file", WATCHES_FILE, options={"metavar": "PATH"})

RUN_FLAGS: tuple[Flag, ...] = (
    WATCHES_FILE_FLAG,
    Flag("--reconcile-period", "reconcile period of watches that set none", None,
         shown=_duration_text(DEFAULT_RECONCILE_PERIOD), options={"metavar": "DURATION"}),
    Flag("--run-timeout", "how long a run of a watch that sets no runTimeout may take before it is ended, "
         "reported as a failure and retried", None, shown="none, as in the SDK", options={"metavar": "DURATION"}),
    Flag("--max-concurrent-reconciles", "concurrent reconciles of a watch that sets none",
         _WATCH_DEFAULTS.max_concurrent_reconciles, shown=f"the number of CPUs, here "
         f"{_WATCH_DEFAULTS.max_concurrent_reconciles}",
         env=f"{MAX_CONCURRENT_RECONCILES_ENV_PREFIX}{_PER_KIND} per watch", type=int, options={"metavar": "N"}),
    Flag("--ansible-verbosity", "Ansible verbosity (0-7) of watches that set none",
         _WATCH_DEFAULTS.ansible_verbosity, env=f"{ANSIBLE_VERBOSITY_ENV_PREFIX}{_PER_KIND} per watch", type=int,
         options={"metavar": "N"}),
    Flag("--ansible-args", "extra arguments for every ansible-playbook run", "", shown='""',
         options={"metavar": "ARGS"}),
    Flag("--ansible-artifacts-dir", "where ansible-runner artifacts go", None,
         shown=f"$TMPDIR/playbook-operator/{RUN_ARTIFACTS_DIR}", options={"metavar": "DIR"}),
    Flag("--inject-owner-ref", "add an owner reference to what roles create", True, type=parse_boolean,
         options={"metavar": "BOOL"}),
    Flag("--warm-ansible", "run Ansible and its modules in warm fork servers; false runs a cold "
         "ansible-playbook and a fresh interpreter per task, as the SDK does", True, type=parse_boolean,
         options={"metavar": "BOOL"}),
    Flag("--cache-reads", "answer roles' GETs and LISTs of watched kinds from the operator's watch cache, through "
         "a local API endpoint their kubeconfig names; false: roles talk to the apiserver themselves",
         True, type=parse_boolean, options={"metavar": "BOOL"}),
    Flag("--log-format", "how log lines are written", LOG_FORMAT, options={"choices": LOG_FORMATS}),
    Flag("--log-level", "the least level logged (DEBUG, INFO, WARNING, ERROR)", LOG_LEVEL,
         options={"metavar": "LEVEL"}),
    # controller-runtime's zap flags, which SDK manifests pass: read into the two above.
    Flag("--zap-log-level", "the SDK's name for the level: debug, info, error, panic, or an integer verbosity "
         "(any is debug here); overrides --log-level", None, shown="unset", type=zap_level,
         options={"metavar": "LEVEL"}),
    Flag("--zap-encoder", "the SDK's name for the format: json, or console (text); overrides --log-format", None,
         shown="unset", options={"choices": ("json", "console")}),
    Flag("--zap-devel", "the SDK's development logging: debug, in text", False, type=parse_boolean,
         options={"metavar": "BOOL", "nargs": "?", "const": True}),
    Flag("--zap-stacktrace-level", "accepted so SDK manifests run unchanged; no effect here", None,
         shown="unset", options={"metavar": "LEVEL"}),
    Flag("--zap-time-encoding", "accepted so SDK manifests run unchanged; no effect here", None,
         shown="unset", options={"metavar": "ENCODING"}),
    # Operations: metrics, probes and leader election, with the SDK's flag names and defaults.
    Flag("--metrics-bind-address", "where /metrics is served: HOST:PORT, :PORT for every interface, 0 to disable",
         METRICS_BIND_ADDRESS, options={"metavar": "ADDRESS"}),
    Flag("--health-probe-bind-address", "where /healthz and /readyz are served: HOST:PORT, :PORT, or 0 to disable",
         HEALTH_PROBE_BIND_ADDRESS, options={"metavar": "ADDRESS"}),
    Flag("--metrics-secure", "serve /metrics over HTTPS, with a self-signed certificate", False, type=parse_boolean,
         options={"metavar": "BOOL", "nargs": "?", "const": True}),
    Flag("--metrics-require-rbac", "each scrape of /metrics must carry a token allowed to get /metrics (checked "
         "with TokenReviews and SubjectAccessReviews); needs --metrics-secure", False, type=parse_boolean,
         options={"metavar": "BOOL", "nargs": "?", "const": True}),
    Flag("--enable-http2", "accepted so SDK manifests run unchanged; /metrics is served over HTTP/1.1", False,
         type=parse_boolean, options={"metavar": "BOOL", "nargs": "?", "const": True}),
    Flag("--user-metrics-bind-address", "where roles' operator_sdk.util.osdk_metric requests are received (served "
         "on /metrics with the rest): HOST:PORT, or 0 to disable", USER_METRICS_BIND_ADDRESS,
         options={"metavar": "ADDRESS"}),
    Flag("--leader-elect", "run as one replica of several: only the holder of a Lease watches and reconciles",
         False, options={"action": "store_true"}),
    Flag("--sharding", "run as one of several replicas that split the objects between them: each holds a "
         "Lease of its own and reconciles only its share", False, options={"action": "store_true"}),
    Flag("--sharding-member", "this replica's name among the sharded members (in its Lease's name)", None,
         shown="the host name: a pod's own name", options={"metavar": "NAME"}),
    Flag("--leader-election-id", "name of the Lease (with --sharding: the prefix of the members' Leases, and "
         "the operator's name on them)", None,
         shown="<hash of the watched kinds>-playbook-operator", env=OPERATOR_NAME_ENV, options={"metavar": "ID"}),
    Flag("--leader-election-namespace", "namespace of the Lease (or the members' Leases); required outside a "
         "cluster", None,
         shown="the pod's own, from its service account", env=POD_NAMESPACE_ENV, options={"metavar": "NAMESPACE"}),
    Flag("--leader-elect-lease-duration", "how long a standby waits before taking a lease that was not renewed",
         LEASE_DURATION, shown=_duration_text(LEASE_DURATION), type=parse_duration,
         options={"metavar": "DURATION"}),
    Flag("--leader-elect-renew-deadline", "how long the leader keeps trying to renew before it stops",
         RENEW_DEADLINE, shown=_duration_text(RENEW_DEADLINE), type=parse_duration, options={"metavar": "DURATION"}),
    Flag("--leader-elect-retry-period", "how often the lease is renewed or tried", RETRY_PERIOD,
         shown=_duration_text(RETRY_PERIOD), type=parse_duration, options={"metavar": "DURATION"}),
)

RECONCILE_FLAGS: tuple[Flag, ...] = (
    WATCHES_FILE_FLAG,
    Flag("--check", "dry run: report changes without making them", False, options={"action": "store_true"}),
    Flag("--diff", "show the changes each task makes or would make", False, options={"action": "store_true"}),
    Flag("--ansible-verbosity", "Ansible verbosity (0-7) of the run", RECONCILE_ANSIBLE_VERBOSITY, type=int,
         options={"metavar": "N"}),
)

# Read from the environment and not standing in for a flag.
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (WATCH_NAMESPACE_ENV, "comma-separated namespaces to watch (default: all of them)"),
    (MAX_CONCURRENT_RECONCILES_ENV_PREFIX + _PER_KIND,
     f"concurrent reconciles of one watch (also the older {WORKER_ENV_PREFIX}{_PER_KIND})"),
    (ANSIBLE_VERBOSITY_ENV_PREFIX + _PER_KIND, "Ansible verbosity of one watch"),
    ("ANSIBLE_ROLES_PATH", "where the roles watches.yaml names are looked for"),
    ("ANSIBLE_COLLECTIONS_PATH", "where collection roles (namespace.collection.role) are looked for"),
    (KUBECONFIG_ENV, "the cluster, for the operator and for the modules its roles run"),
    (COMMIT_ENV, "the commit the ansible_operator_build_info metric names"),
    ("$NAME", "in watches.yaml: replaced by the variable's value"),
)


def environment_epilog() -> str:
    """The environment variables for `run --help`, one to a line and its meaning below it."""
    lines = [f"  {name}\n      {text}" for name, text in ENVIRONMENT]
    return "environment:\n" + "\n".join(lines) + "\n\nAnsible's own variables pass through to Ansible untouched."


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    for flag in flags:
        flag.add_to(parser)


def parse(argv: Sequence[str] = (), env: Mapping[str, str] | None = None, *,
          command: str = "run") -> OperatorSettings:
    """The settings of ``run`` (or ``reconcile``) from its flags alone and ``env``, without the rest
    of the command line; argparse's errors exit as they do there."""
    parser = argparse.ArgumentParser(prog=f"playbook-operator {command}")
    add_flags(parser, RECONCILE_FLAGS if command == "reconcile" else RUN_FLAGS)
    return OperatorSettings.from_args(parser.parse_args(list(argv), argparse.Namespace(command=command)), env)
