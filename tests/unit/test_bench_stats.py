"""bench.stats and bench.progress: the figures the benchmark publishes."""

from __future__ import annotations

import math

import pytest

from bench import progress, stats


def test_percentile_interpolates_between_ranks() -> None:
    samples = [float(i) for i in range(1, 21)]  # 1..20
    assert stats.percentile(samples, 50) == pytest.approx(10.5)
    assert stats.percentile(samples, 95) == pytest.approx(19.05)
    assert stats.percentile(samples, 100) == 20.0
    assert stats.percentile([3.0], 95) == 3.0


def test_percentile_ignores_order() -> None:
    assert stats.percentile([5.0, 1.0, 3.0], 50) == 3.0


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        stats.percentile([], 50)


def test_summarize() -> None:
    s = stats.summarize([1.0, 2.0, 3.0, 10.0])
    assert s == {"n": 4, "median": 2.5, "p95": pytest.approx(8.95), "min": 1.0, "max": 10.0}
    assert stats.summarize([]) == {"n": 0, "median": None, "p95": None, "min": None, "max": None}


def test_timeouts_count_as_longer_than_any_sample() -> None:
    s = stats.summarize([1.0, 2.0, 3.0], timeouts=1)
    assert s["n"] == 3 and s["timeouts"] == 1
    assert s["median"] == 2.5
    assert s["min"] == 1.0
    assert s["p95"] is None and s["max"] is None
    assert s["over_cap"] == ["p95", "max"]
    assert stats.summarize([], timeouts=2) == {"n": 0, "median": None, "p95": None, "min": None, "max": None,
                                               "timeouts": 2, "over_cap": ["median", "p95", "min", "max"]}
    assert stats.percentile([1.0, math.inf, math.inf], 75) == math.inf


def test_ratio_is_other_over_ours() -> None:
    assert stats.ratio(0.5, 5.0) == 10.0
    assert stats.ratio(None, 5.0) is None
    assert stats.ratio(1.0, None) is None
    assert stats.ratio(0.0, 0.0) is None
    assert math.isinf(stats.ratio(0.0, 3.0) or 0.0)


def test_progress_bar_line() -> None:
    line = progress.render("burst", 5, 10, 12.4, width=10)
    assert "[#####.....]" in line
    assert "5/10" in line
    assert line.rstrip().endswith("12s")
    assert "[##########]" in progress.render("x", 3, 0, 0, width=10) or "[" in progress.render("x", 0, 0, 0)


def test_progress_writes_lines_when_not_a_terminal() -> None:
    import io

    out = io.StringIO()
    p = progress.Progress(2, stream=out)
    p.begin("first")
    p.update(1, 4)  # not written: off a terminal, a step's start, its end and a line every 30 s
    p.update(4, 4)
    p.update(4, 4)
    p.note("said")
    p.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/2] first")
    assert "4/4" in lines[1]
    assert lines[2] == "said"
