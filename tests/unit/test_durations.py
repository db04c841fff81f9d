"""Go durations, written once (playbook_operator.kube's module_utils) for the runner's
reconcile periods and leader-election flags and for the requeue_after module: what Go's
time.ParseDuration accepts, what it refuses and why, and the malformed input the older copies
read differently (spaces, signs, sub-nanosecond fractions, overflow, non-strings)."""

from __future__ import annotations

import re

import pytest

from runner import watches
from runner.basics import durations

DurationError = durations.DurationError
parse_duration = durations.parse_duration


def test_the_runner_and_the_collections_share_one_parser() -> None:
    assert watches.parse_duration is parse_duration
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("1m", 60.0), ("1m30s", 90.0), ("1h", 3600.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
    ("2h45m", 9900.0), ("2h45m30.5s", 9930.5), ("300ms", 0.3), ("1500us", 0.0015), ("10ns", 1e-8),
    ("1us", 1e-6), ("1\u00b5s", 1e-6), ("1\u03bcs", 1e-6), ("1ns", 1e-9), ("1h1m1s1ms", 3661.001),
    (".5s", 0.5), ("1.s", 1.0), ("0", 0.0), ("-0", 0.0), ("+0", 0.0), ("+5s", 5.0), ("+5m", 300.0),
    ("-1s", -1.0), ("-.5m", -30.0), ("0s", 0.0), ("0m0s", 0.0), ("1s1s", 2.0),
])
def test_durations_parse_as_go_does(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "expected a number and a unit"),
    ("+", "expected a number and a unit"),
    ("-", "expected a number and a unit"),
    ("5", "missing unit after '5'"),
    ("1", "missing unit"),
    ("100", "missing unit"),
    ("00", "missing unit"),  # only a bare "0" needs no unit
    ("1.5.3s", "missing unit"),
    ("1.5.5s", "missing unit"),
    ("h", "expected a number"),
    ("s", "expected a number"),
    (".", "expected a number"),
    (".s", "expected a number"),
    ("1d", "unknown unit 'd'"),
    ("1x", "unknown unit 'x'"),
    ("1S", "unknown unit 'S'"),
    ("1H", "unknown unit 'H'"),
    ("1e3s", "unknown unit 'e'"),
    ("5 minutes", "unknown unit ' minutes'"),
    ("1h 30m", "unknown unit 'h '"),
    # Go reads no spaces, around or inside (an older copy stripped them).
    (" 1s", "expected a number"),
    ("1s ", "unknown unit 's '"),
    ("1 s", "unknown unit ' s'"),
    ("--1s", "expected a number"),
    ("3000000h", "longer than Go's maximum"),
    ("-3000000h", "longer than Go's maximum"),
])
def test_what_go_refuses_fails_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(DurationError, match=f"^{re.escape(f'invalid duration {text!r}: ')}.*{re.escape(reason)}"):
        parse_duration(text)


def test_the_int64_bounds_are_go_s() -> None:
    assert parse_duration("9223372036854775807ns") == pytest.approx(9223372036.854775807)
    assert parse_duration("-9223372036854775808ns") == pytest.approx(-9223372036.854775808)
    with pytest.raises(DurationError, match="longer than Go's maximum"):
        parse_duration("9223372036854775808ns")


def test_fractions_below_a_nanosecond_are_dropped() -> None:
    assert parse_duration("1.9ns") == 1e-9
    assert parse_duration("0.5ns") == 0.0


def test_negative_durations_are_parsed_and_left_to_the_caller() -> None:
    # The parser reads Go's syntax; "negative is wrong here" is each caller's rule
    # (watches.yaml and the operator's flags refuse one, requeue_after fails the task).
    assert parse_duration("-90s") == -90.0


@pytest.mark.parametrize("value", [None, 30, 1.5, ["1m"], b"1m"])
def test_a_non_string_is_refused(value: object) -> None:
    with pytest.raises(DurationError, match="must be a string such as '30s'"):
        durations.parse_duration(value)  # type: ignore[arg-type]
