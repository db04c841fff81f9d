"""metav1 times, read and written once for the runner (Leases, metrics) and the collections
(the service catalog's operation times, a broker's lastCatalogRetrievalTime)."""

from __future__ import annotations

import datetime

import pytest

from runner.basics import times

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@pytest.mark.parametrize("text", ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00", "2026-01-02T04:04:05+01:00",
                                  "2026-01-02T03:04:05"])
def test_rfc3339_times_are_read_as_utc(text: str) -> None:
    parsed = times.parse_time(text)
    assert parsed == T0 and parsed is not None and parsed.tzinfo == datetime.UTC


def test_micro_times_keep_their_fraction() -> None:
    assert times.parse_time("2026-01-02T03:04:05.123456Z") == T0.replace(microsecond=123456)


def test_datetimes_naive_ones_taken_as_utc() -> None:
    assert times.parse_time(T0.replace(tzinfo=None)) == T0
    assert times.parse_time(T0.astimezone(datetime.timezone(datetime.timedelta(hours=-5)))) == T0


@pytest.mark.parametrize("value", [None, "", "yesterday", "2026-13-01T00:00:00Z", 1767323045, ["2026"]])
def test_absent_or_malformed_times_are_none(value: object) -> None:
    assert times.parse_time(value) is None


def test_a_time_is_written_in_utc_to_the_second() -> None:
    east = datetime.timezone(datetime.timedelta(hours=2))
    assert times.format_time(T0.replace(microsecond=999999).astimezone(east)) == "2026-01-02T03:04:05Z"
    assert times.parse_time(times.format_time(T0)) == T0
