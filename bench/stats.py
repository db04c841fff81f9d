"""Summaries of samples: median, p95 and ratios. Pure; unit-tested."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """n, median, p95, min and max of samples; an empty list gives n=0 and None figures."""
    if not samples:
        return {"n": 0, "median": None, "p95": None, "min": None, "max": None}
    return {"n": len(samples), "median": statistics.median(samples), "p95": percentile(samples, 95),
            "min": min(samples), "max": max(samples)}


def ratio(ours: float | None, other: float | None) -> float | None:
    """How many times `other` is ours (other / ours): 5.0 means five times faster or lighter.
    None when either is missing; inf when ours is 0 and the other is not."""
    if ours is None or other is None:
        return None
    if ours == 0:
        return None if other == 0 else math.inf
    return other / ours
