"""The operator's settings: defaults, flags against the environment, validation, `--help`, and
that no other module reads the environment for itself."""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import textwrap
from pathlib import Path

import pytest

from runner import cli, settings
from runner.reconcile import run_env
from runner.settings import BindAddress, OperatorSettings, Timings
from runner.watches import WatchesError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def outside_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_NAMESPACE", Path("/nonexistent/namespace"))


# --- defaults ----------------------------------------------------------------------------------------


def test_the_defaults() -> None:
    config = settings.parse([], {})
    assert config.watching.watches_file == "./watches.yaml"
    assert config.watching.namespaces == ()
    defaults = config.watching.defaults
    assert (defaults.max_concurrent_reconciles, defaults.ansible_verbosity) == (os.cpu_count() or 1, 2)
    assert defaults.reconcile_period_seconds() == 10 * 3600
    assert config.ansible.args == "" and config.ansible.verbosity is None and config.ansible.kubeconfig == ""
    assert config.ansible.artifacts_dir == Path(tempfile.gettempdir()) / "playbook-operator" / "runner"
    assert config.ansible.inject_owner_ref and config.ansible.warm
    assert not (config.ansible.check or config.ansible.diff)
    election = config.leader_election
    assert (election.enabled, election.id, election.namespace) == (False, "", None)
    assert election.timings == Timings(15.0, 10.0, 2.0)
    assert config.serving.metrics_address == BindAddress(None, 8080)
    assert config.serving.health_address == BindAddress(None, 6789)
    assert config.serving.user_metrics_address == BindAddress("localhost", 5050)  # the SDK's, built into its module
    assert (config.logging.format, config.logging.level) == ("text", "INFO")
    assert config.commit == ""


def test_the_flags_defaults_are_the_objects_own() -> None:
    """One definition: the settings read from no flags equal the object built with no arguments."""
    assert settings.parse([], {}) == OperatorSettings()


def test_reconcile_runs_one_object_quietly_with_its_own_artifacts() -> None:
    config = settings.parse([], {}, command="reconcile")
    assert config.ansible.artifacts_dir == Path(tempfile.gettempdir()) / "playbook-operator" / "reconcile"
    assert config.ansible.verbosity == 0 and config.watching.defaults.ansible_verbosity == 0
    assert config.watching.defaults.max_concurrent_reconciles == 1
    checked = settings.parse(["--check", "--diff", "--ansible-verbosity", "3"], {}, command="reconcile")
    assert (checked.ansible.check, checked.ansible.diff, checked.ansible.verbosity) == (True, True, 3)


def test_settings_are_frozen_and_keep_their_own_copy_of_the_environment() -> None:
    env = {"WATCH_NAMESPACE": "a"}
    config = settings.parse([], env)
    env["WATCH_NAMESPACE"] = "b"
    assert config.environment["WATCH_NAMESPACE"] == "a"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.commit = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.environment["WATCH_NAMESPACE"] = "c"  # type: ignore[index]


# --- flags and the environment -----------------------------------------------------------------------


def test_flags() -> None:
    config = settings.parse(["--watches-file", "w.yaml", "--reconcile-period", "90s", "--max-concurrent-reconciles",
                             "4", "--ansible-verbosity", "0", "--ansible-args", "--tags x", "--ansible-artifacts-dir",
                             "/art", "--inject-owner-ref", "false", "--warm-ansible", "no", "--log-format", "json",
                             "--log-level", "debug", "--metrics-bind-address", "0", "--health-probe-bind-address",
                             "127.0.0.1:7000", "--user-metrics-bind-address", "0", "--leader-elect",
                             "--leader-election-namespace", "ops",
                             "--leader-elect-lease-duration", "1m"], {})
    assert config.watching.watches_file == "w.yaml"
    assert config.watching.defaults.reconcile_period_seconds() == 90
    assert (config.watching.defaults.max_concurrent_reconciles, config.watching.defaults.ansible_verbosity) == (4, 0)
    assert (config.ansible.args, config.ansible.artifacts_dir) == ("--tags x", Path("/art"))
    assert not (config.ansible.inject_owner_ref or config.ansible.warm)
    assert (config.logging.format, config.logging.level) == ("json", "debug")
    assert config.serving.metrics_address is None
    assert config.serving.health_address == BindAddress("127.0.0.1", 7000)
    assert config.serving.user_metrics_address is None
    assert (config.leader_election.enabled, config.leader_election.namespace) == (True, "ops")
    assert config.leader_election.timings == Timings(60.0, 10.0, 2.0)


def test_the_environment() -> None:
    config = settings.parse([], {"WATCH_NAMESPACE": " a, b,,", "KUBECONFIG": "/kube/config",
                                 "PLAYBOOK_OPERATOR_COMMIT": "abc123", "OPERATOR_NAME": "legacy",
                                 "POD_NAMESPACE": "ops"})
    assert config.watching.namespaces == ("a", "b")
    assert config.ansible.kubeconfig == "/kube/config"
    assert run_env(config.ansible, {"metadata": {}})["K8S_AUTH_KUBECONFIG"] == "/kube/config"
    assert "K8S_AUTH_KUBECONFIG" not in run_env(settings.parse([], {}).ansible, {"metadata": {}})
    assert config.commit == "abc123"
    assert (config.leader_election.id, config.leader_election.namespace) == ("legacy", "ops")


def test_a_flag_wins_over_its_environment_variable() -> None:
    env = {"OPERATOR_NAME": "legacy", "POD_NAMESPACE": "from-env"}
    config = settings.parse(["--leader-election-id", "mine", "--leader-election-namespace", "ops"], env)
    assert (config.leader_election.id, config.leader_election.namespace) == ("mine", "ops")


def test_the_pods_own_namespace_wins_over_pod_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = tmp_path / "namespace"
    account.write_text("in-cluster\n")
    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_NAMESPACE", account)
    assert settings.parse([], {"POD_NAMESPACE": "from-env"}).leader_election.namespace == "in-cluster"


def test_watches_are_read_with_the_settings_environment(tmp_path: Path) -> None:
    (tmp_path / "roles" / "memcached").mkdir(parents=True)
    watches = tmp_path / "watches.yaml"
    watches.write_text(textwrap.dedent(f"""\
        - version: v1
          group: cache.example.com
          kind: Memcached
          role: {tmp_path}/roles/$ROLE
        """))
    config = settings.parse(["--watches-file", str(watches), "--max-concurrent-reconciles", "3"],
                            {"ROLE": "memcached", "ANSIBLE_VERBOSITY_MEMCACHED_CACHE_EXAMPLE_COM": "5"})
    [watch] = cli._load(config)
    assert watch.role == tmp_path / "roles" / "memcached"
    assert (watch.max_concurrent_reconciles, watch.ansible_verbosity) == (3, 5)


# --- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "error", "message"), [
    (["--max-concurrent-reconciles", "0"], WatchesError, "default max concurrent reconciles: must be an integer >= 1"),
    (["--ansible-verbosity", "8"], WatchesError, "default ansible verbosity: must be an integer from 0 to 7"),
    (["--reconcile-period", "soon"], WatchesError, "default reconcile period: invalid duration 'soon'"),
    (["--metrics-bind-address", "8080"], ValueError, "invalid bind address '8080'"),
    (["--health-probe-bind-address", "::1:80"], ValueError, "an IPv6 host goes in brackets"),
    (["--leader-elect-lease-duration", "5s"], ValueError, "must be longer than the renew deadline"),
    (["--leader-elect-retry-period", "9s"], ValueError, "must be longer than 1.2 times the retry period"),
    (["--leader-elect-retry-period", "0s"], ValueError, "must be positive"),
    (["--leader-elect"], ValueError, "--leader-election-namespace is required with --leader-elect outside a cluster"),
])
def test_invalid_settings(flags: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        settings.parse(flags, {})
    assert message in str(caught.value)


def test_unparsable_flags_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for flags in (["--inject-owner-ref", "maybe"], ["--leader-elect-renew-deadline", "soon"],
                  ["--max-concurrent-reconciles", "many"], ["--log-format", "xml"]):
        with pytest.raises(SystemExit):
            settings.parse(flags, {})
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err


# --- --help ------------------------------------------------------------------------------------------


def help_of(command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "400")  # one line per flag: nothing wrapped mid-word
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return capsys.readouterr().out


def flag_help(text: str, flag: str) -> str:
    """A flag's entry in --help, on one line (argparse puts a long flag's help on the next)."""
    match = re.search(rf"^  {re.escape(flag)}(?=[ ,\n]).*?(?=^  -|^\S|\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"{flag} is not in --help"
    return " ".join(match.group(0).split())


def test_run_help_names_every_default_and_environment_variable(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_of("run", capsys, monkeypatch)
    for flag in settings.RUN_FLAGS:
        line = flag_help(text, flag.name)
        assert "(default: " in line, line
        if flag.env:
            assert f"; env: {flag.env})" in line, line
    expected = {
        "--watches-file": "(default: ./watches.yaml)",
        "--reconcile-period": "(default: 10h)",
        "--max-concurrent-reconciles": f"here {os.cpu_count() or 1}; env: MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>",
        "--ansible-verbosity": "(default: 2; env: ANSIBLE_VERBOSITY_<KIND>_<GROUP> per watch)",
        "--inject-owner-ref": "(default: true)",
        "--warm-ansible": "(default: true)",
        "--metrics-bind-address": "(default: :8080)",
        "--health-probe-bind-address": "(default: :6789)",
        "--leader-elect": "(default: false)",
        "--leader-election-id": "env: OPERATOR_NAME)",
        "--leader-election-namespace": "env: POD_NAMESPACE)",
        "--leader-elect-lease-duration": "(default: 15s)",
        "--leader-elect-renew-deadline": "(default: 10s)",
        "--leader-elect-retry-period": "(default: 2s)",
        "--log-format": "(default: text)",
    }
    for flag, fragment in expected.items():
        assert fragment in flag_help(text, flag)
    environment = text[text.index("environment:"):]
    for name in ("WATCH_NAMESPACE", "MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP>", "WORKER_<KIND>_<GROUP>",
                 "ANSIBLE_VERBOSITY_<KIND>_<GROUP>", "ANSIBLE_ROLES_PATH", "ANSIBLE_COLLECTIONS_PATH", "KUBECONFIG",
                 "PLAYBOOK_OPERATOR_COMMIT"):
        assert name in environment


def test_reconcile_help_names_every_default(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_of("reconcile", capsys, monkeypatch)
    for flag in settings.RECONCILE_FLAGS:
        assert "(default: " in flag_help(text, flag.name)
    assert "(default: 0)" in flag_help(text, "--ansible-verbosity")


# --- the environment is read here only ---------------------------------------------------------------

# Modules that hand the environment on to the processes of a run, or (ownerrefs) run inside them.
HANDS_THE_ENVIRONMENT_ON = {"settings.py", "ansible.py", "warm.py", "forkserver.py", "ownerrefs.py",
                            "plugins/connection/warm_local.py"}
READS_THE_ENVIRONMENT = re.compile(r"\bos\.environ\b|\bgetenv\b|\benviron\b|\bputenv\b")


def test_no_other_module_reads_the_environment() -> None:
    readers = sorted(str(path.relative_to(ROOT / "runner")) for path in (ROOT / "runner").rglob("*.py")
                     if READS_THE_ENVIRONMENT.search(path.read_text()))
    assert readers, "the pattern finds nothing: it is broken"
    assert set(readers) <= HANDS_THE_ENVIRONMENT_ON, (
        f"{sorted(set(readers) - HANDS_THE_ENVIRONMENT_ON)} read the environment: read it in runner/settings.py "
        "and hand the setting on")


def test_ansible_args_lose_the_quotes_the_sdks_manager_yaml_puts_around_them() -> None:
    quoted = settings.parse(["--ansible-args='--vault-password-file /opt/ansible/pwd.yml'"], {})
    assert quoted.ansible.args == "--vault-password-file /opt/ansible/pwd.yml"
    assert settings.parse(["--ansible-args", "--tags a -e 'x=1'"], {}).ansible.args == "--tags a -e 'x=1'"
    assert settings.parse(["--ansible-args", "'"], {}).ansible.args == "'"


@pytest.mark.parametrize(("flags", "expected"), [
    ([], ("text", "INFO")),
    (["--zap-log-level=2"], ("text", "DEBUG")),
    (["--zap-log-level", "error", "--log-level", "DEBUG"], ("text", "ERROR")),
    (["--zap-encoder", "json"], ("json", "INFO")),
    (["--zap-devel"], ("text", "DEBUG")),
    (["--zap-devel=false", "--log-format", "json"], ("json", "INFO")),
    (["--zap-devel", "--zap-encoder=json", "--zap-log-level=info", "--zap-stacktrace-level=error",
      "--zap-time-encoding=rfc3339"], ("json", "INFO")),
])
def test_the_sdks_zap_flags_set_the_logging(flags: list[str], expected: tuple[str, str]) -> None:
    config = settings.parse(["--watches-file", "w.yaml", *flags], {})
    assert (config.logging.format, config.logging.level) == expected


def test_a_bad_zap_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        settings.parse(["--zap-log-level", "loud"], {})
    assert "expected debug, info, error, panic or an integer above 0, got 'loud'" in capsys.readouterr().err
