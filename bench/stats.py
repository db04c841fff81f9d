"""Summaries of samples: median, p95 and ratios. Pure; unit-tested."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    if low == high or math.isinf(ordered[low]):
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples: Sequence[float], timeouts: int = 0) -> dict[str, Any]:
    """n, median, p95, min and max of samples; an empty list gives n=0 and None figures.

    `timeouts` samples did not finish within their cap: they count as longer than any sample, and
    a figure that falls among them is None and named in `over_cap` (it is more than the cap)."""
    if not samples and not timeouts:
        return {"n": 0, "median": None, "p95": None, "min": None, "max": None}
    every = [*samples, *([math.inf] * timeouts)]
    figures = {"median": percentile(every, 50), "p95": percentile(every, 95), "min": min(every), "max": max(every)}
    out: dict[str, Any] = {"n": len(samples), **{k: None if math.isinf(v) else v for k, v in figures.items()}}
    if timeouts:
        out["timeouts"] = timeouts
        out["over_cap"] = [k for k, v in figures.items() if math.isinf(v)]
    return out


def ratio(ours: float | None, other: float | None) -> float | None:
    """How many times `other` is ours (other / ours): 5.0 means five times faster or lighter.
    None when either is missing; inf when ours is 0 and the other is not."""
    if ours is None or other is None:
        return None
    if ours == 0:
        return None if other == 0 else math.inf
    return other / ours
