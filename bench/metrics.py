"""An operator's /metrics, read by the bench: the Prometheus text format, its labels and
histograms, and what they say about a work queue. Pure but for `scrape`; unit-tested.

What the bench reads (playbook-operator names them as the SDK's binary does where both have them,
`runner/metrics.py`):

- ``ansible_operator_reconciles_count{GVK}``: one observation per Ansible run, in both operators;
- ``workqueue_depth{name,controller}`` and ``controller_runtime_active_workers{controller}``:
  controller-runtime's, in both (the SDK's binary is built on it);
- ``playbook_operator_workqueue_depth{controller,priority}``: ours only, keys waiting by priority
  (``high``: what users changed; ``low``: the initial list, requeues, retries, dependents' changes);
- ``workqueue_queue_duration_seconds{name,controller[,priority]}``: controller-runtime's histogram
  of how long a key waited before a worker took it; ours adds the priority it ran at.
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

RUNS = "ansible_operator_reconciles_count"
DEPTH = "workqueue_depth"
DEPTH_BY_PRIORITY = "playbook_operator_workqueue_depth"
ACTIVE_WORKERS = "controller_runtime_active_workers"
QUEUE_WAIT = "workqueue_queue_duration_seconds"
# The label value that names a series without a priority label (the SDK's queue has one FIFO).
ALL = "all"

_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
        except ValueError:
            continue
    return out


def split_key(key: str) -> tuple[str, dict[str, str]]:
    """`name{a="1",b="x, y"}` -> ("name", {"a": "1", "b": "x, y"}); escapes undone."""
    name, _, rest = key.partition("{")
    labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
              for k, v in _LABEL.findall(rest)}
    return name, labels


def series(samples: Mapping[str, float], name: str) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of `name`."""
    for key, value in samples.items():
        base, labels = split_key(key)
        if base == name:
            yield labels, value


def metric_sum(samples: Mapping[str, float], name: str, label_contains: str = "") -> float:
    """The sum of every sample of `name` (any labels) whose labels contain `label_contains`."""
    total = 0.0
    for key, value in samples.items():
        base = key.split("{", 1)[0]
        if base == name and label_contains in key:
            total += value
    return total


def _ours(labels: Mapping[str, str], controller: str) -> bool:
    return controller in labels.get("controller", "") or controller in labels.get("name", "")


# ---------------------------------------------------------------- the work queue


@dataclass(frozen=True)
class QueueState:
    """One scrape's view of a controller's queue. A field is None when the system does not
    expose it."""

    runs: float | None
    depth: dict[str, float] | None  # keys waiting, by priority (`ALL` without priorities)
    active: float | None  # workers busy with a key

    @property
    def waiting(self) -> float | None:
        return None if self.depth is None else sum(self.depth.values())


def queue_state(samples: Mapping[str, float], controller: str, gvk_contains: str) -> QueueState:
    """The queue of the controller whose name contains `controller` (e.g. "podset"): depth by
    priority where the operator reports it, else controller-runtime's one depth."""
    by_priority = {labels.get("priority", ALL): value for labels, value in series(samples, DEPTH_BY_PRIORITY)
                   if _ours(labels, controller)}
    plain = [value for labels, value in series(samples, DEPTH) if _ours(labels, controller)]
    depth = by_priority or ({ALL: sum(plain)} if plain else None)
    active = [value for labels, value in series(samples, ACTIVE_WORKERS) if _ours(labels, controller)]
    runs = [value for labels, value in series(samples, RUNS) if gvk_contains in labels.get("GVK", "")]
    return QueueState(runs=sum(runs) if runs else None, depth=depth, active=sum(active) if active else None)


# ---------------------------------------------------------------- histograms


@dataclass(frozen=True)
class Histogram:
    """A cumulative Prometheus histogram: (upper bound, observations at or under it), sorted,
    the last bound +Inf; plus the count and the sum of the observations."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    total: float

    def minus(self, earlier: Histogram | None) -> Histogram:
        """The observations made since `earlier` (a reading of the same series)."""
        if earlier is None:
            return self
        before = dict(earlier.buckets)
        return Histogram(tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets),
                         self.count - earlier.count, self.total - earlier.total)

    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def quantile_bound(self, q: float) -> float | None:
        """The upper bound of the bucket that holds the q-quantile (0..1): the quantile is at
        most this. None without observations; inf when it lies beyond the last finite bound."""
        if self.count <= 0:
            return None
        rank = q * self.count
        for le, cumulative in self.buckets:
            if cumulative >= rank and cumulative > 0:
                return le
        return math.inf

    def summary(self) -> dict[str, float | None]:
        """n, mean, and the bounds of the median and p95 (None for inf: JSON has no infinity)."""
        def finite(v: float | None) -> float | None:
            return None if v is None or math.isinf(v) else v
        return {"n": self.count, "mean": self.mean(), "p50_at_most": finite(self.quantile_bound(0.5)),
                "p95_at_most": finite(self.quantile_bound(0.95))}

    def as_dict(self) -> dict[str, object]:
        return {"buckets": [["+Inf" if math.isinf(le) else le, n] for le, n in self.buckets],
                "count": self.count, "sum": self.total}


def histograms(samples: Mapping[str, float], name: str, controller: str,
               by: str = "priority") -> dict[str, Histogram]:
    """Every histogram `name` of the controller whose name contains `controller`, by the value
    of label `by` (`ALL` where a series has no such label)."""
    buckets: dict[str, dict[float, float]] = {}
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    for labels, value in series(samples, f"{name}_bucket"):
        if _ours(labels, controller):
            buckets.setdefault(labels.get(by, ALL), {})[float(labels["le"])] = value
    for labels, value in series(samples, f"{name}_count"):
        if _ours(labels, controller):
            counts[labels.get(by, ALL)] = value
    for labels, value in series(samples, f"{name}_sum"):
        if _ours(labels, controller):
            sums[labels.get(by, ALL)] = value
    return {key: Histogram(tuple(sorted(b.items())), counts.get(key, 0.0), sums.get(key, 0.0))
            for key, b in buckets.items()}


def histograms_since(now: Mapping[str, Histogram], earlier: Mapping[str, Histogram]) -> dict[str, Histogram]:
    """Per key, the observations made between two readings."""
    return {key: h.minus(earlier.get(key)) for key, h in now.items()}


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # nosec B310  # a 127.0.0.1 metrics URL
        return parse_prometheus(resp.read().decode())
