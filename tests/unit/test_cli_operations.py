"""The operations flags of `playbook-operator run`: the SDK's names and defaults, and the
configuration errors that stop the operator before it touches a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import settings
from runner.cli import EXIT_CONFIG, _parser, main

ROOT = Path(__file__).resolve().parents[2]


def test_the_sdks_defaults() -> None:
    args = _parser().parse_args(["run"])
    assert args.metrics_bind_address == ":8080"
    assert args.health_probe_bind_address == ":6789"
    assert args.leader_elect is False
    assert args.leader_election_id is None and args.leader_election_namespace is None
    assert (args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
            args.leader_elect_retry_period) == (15.0, 10.0, 2.0)


def test_durations_are_go_durations() -> None:
    args = _parser().parse_args(["run", "--leader-elect", "--leader-elect-lease-duration", "1m",
                                 "--leader-elect-renew-deadline", "30s", "--leader-elect-retry-period", "500ms"])
    assert (args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
            args.leader_elect_retry_period) == (60.0, 30.0, 0.5)


@pytest.mark.parametrize(("flags", "message"), [
    (["--metrics-bind-address", "8080"], "invalid bind address"),
    (["--health-probe-bind-address", "[::1:80"], "invalid bind address"),
    (["--user-metrics-bind-address", "5050"], "invalid bind address"),
    (["--metrics-require-rbac"], "--metrics-secure is required with --metrics-require-rbac"),
    (["--leader-elect-lease-duration", "5s"], "must be longer than the renew deadline"),
    (["--leader-elect", "--leader-election-namespace", ""], "--leader-election-namespace is required"),
])
def test_configuration_errors(flags: list[str], message: str, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_NAMESPACE", Path("/nonexistent/namespace"))
    code = main(["run", "--watches-file", str(ROOT / "watches.yaml"), *flags])
    assert code == EXIT_CONFIG
    assert message in capsys.readouterr().err
