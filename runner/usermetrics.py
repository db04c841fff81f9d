"""The metrics roles define with ``operator_sdk.util.osdk_metric``: the Operator SDK's user-metrics
contract. A run POSTs one JSON request per task to the operator's user-metrics endpoint
(``--user-metrics-bind-address``, ``localhost:5050`` as in the SDK); the metrics are served on
``/metrics`` beside the operator's own.

A request names one metric and one kind, with at most one operation::

    {"name": "jobs_done", "description": "...", "counter": {"increment": true}}
    counter   increment | add (>= 0)
    gauge     increment | decrement | add | subtract | set | set_to_current_time
    histogram observe
    summary   observe

The first request for a name fixes its kind and help text. As in the SDK, a kind without an
operation only creates the metric, operations are taken in the order above when several are
given, and a ``set`` of 0 is no operation. Unlike the SDK, a histogram or summary created without
``observe`` records no observation of 0.

The text format writes each metric under the name the role gave, as the SDK (Go's client) does;
OpenMetrics requires a counter's samples to end in ``_total``, and gets them so.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.utils import floatToGoString as _untyped_go_float

# The endpoint each run's osdk_metric posts to, as a URL; set but empty: none, the module records
# nothing (`playbook-operator reconcile`, or --user-metrics-bind-address 0). The module falls back
# to the SDK's built-in address when it is not set at all.
USER_METRICS_ENV = "PLAYBOOK_OPERATOR_USER_METRICS_URL"
KINDS = ("counter", "gauge", "histogram", "summary")
# prometheus/client_golang's DefBuckets: the SDK's histograms (its own and its users') use them,
# and dashboards that read their buckets expect the same edges.
GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
# Enough for any role; a bound on what a runaway loop of distinct names can hold in memory.
MAX_METRICS = 1000


class UserMetricError(ValueError):
    """A request the endpoint refuses; the message is the answer the task shows."""


@dataclass
class _Metric:
    kind: str
    help: str
    value: float = 0.0  # counter, gauge
    count: int = 0  # histogram, summary
    sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(GO_DEFAULT_BUCKETS))

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if self.kind == "histogram":
            # Counted in the first bucket it fits (the exposition sums them up); past the last: +Inf only.
            for i, bound in enumerate(GO_DEFAULT_BUCKETS):
                if value <= bound:
                    self.buckets[i] += 1
                    break


def _number(spec: Mapping[str, Any], key: str) -> float:
    value = spec.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserMetricError(f"{key} must be a finite number, got {value!r}")
    return float(value)


class UserMetrics:
    """The user metrics one operator holds. `reserved` names the operator's own metrics, which
    no role may redefine."""

    def __init__(self, reserved: frozenset[str] = frozenset()) -> None:
        self.reserved = reserved
        self._metrics: dict[str, _Metric] = {}

    def apply(self, request: Any) -> None:
        """One request, as the JSON body decoded; raises UserMetricError naming what is wrong."""
        if not isinstance(request, Mapping):
            raise UserMetricError("the request must be a JSON object")
        name = request.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise UserMetricError(f"name must be a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got {name!r}")
        if name in self.reserved:
            raise UserMetricError(f"{name} is one of the operator's own metrics")
        kinds = [k for k in KINDS if request.get(k) is not None]
        if len(kinds) != 1:
            raise UserMetricError("a request names exactly one of counter, gauge, histogram or summary"
                                  + (f", got {' and '.join(kinds)}" if kinds else ""))
        kind = kinds[0]
        spec = request[kind]
        if not isinstance(spec, Mapping):
            raise UserMetricError(f"{kind} must be an object")
        metric = self._metrics.get(name)
        if metric is None:
            if len(self._metrics) >= MAX_METRICS:
                raise UserMetricError(f"too many user metrics (at most {MAX_METRICS})")
            description = request.get("description")
            metric = _Metric(kind, description if isinstance(description, str) else "")
        elif metric.kind != kind:
            raise UserMetricError(f"cannot change metric type of {name}, which is a {metric.kind}")
        _operate(metric, spec)
        self._metrics[name] = metric  # only once the operation is valid: a refused one creates nothing

    def text(self) -> str:
        """The metrics in the Prometheus text format, each under its own name."""
        lines: list[str] = []
        for name, m in sorted(self._metrics.items()):
            lines += [f"# HELP {name} {_escape(m.help)}", f"# TYPE {name} {m.kind}"]
            if m.kind in ("counter", "gauge"):
                lines.append(f"{name} {_go(m.value)}")
                continue
            if m.kind == "histogram":
                for bound, count in zip(GO_DEFAULT_BUCKETS, _cumulative(m.buckets), strict=True):
                    lines.append(f'{name}_bucket{{le="{_go(bound)}"}} {_go(count)}')
                lines.append(f'{name}_bucket{{le="+Inf"}} {_go(m.count)}')
            lines += [f"{name}_sum {_go(m.sum)}", f"{name}_count {_go(m.count)}"]
        return "".join(line + "\n" for line in lines)

    def collect(self) -> Iterator[Metric]:
        """The metrics as families, for the OpenMetrics format."""
        for name, m in sorted(self._metrics.items()):
            if m.kind == "counter":
                yield CounterMetricFamily(name, m.help, value=m.value)
            elif m.kind == "gauge":
                yield GaugeMetricFamily(name, m.help, value=m.value)
            elif m.kind == "histogram":
                bounds = [_go(b) for b in GO_DEFAULT_BUCKETS]
                yield HistogramMetricFamily(name, m.help, sum_value=m.sum, buckets=[
                    *zip(bounds, _cumulative(m.buckets), strict=True), ("+Inf", m.count)])
            else:
                yield SummaryMetricFamily(name, m.help, count_value=m.count, sum_value=m.sum)


def _operate(metric: _Metric, spec: Mapping[str, Any]) -> None:
    """The first operation `spec` gives, in the SDK's order; none only creates the metric."""
    if metric.kind == "counter":
        if spec.get("increment"):
            metric.value += 1
        elif add := _number(spec, "add"):
            if add < 0:
                raise UserMetricError("counter metrics cannot decrease in value")
            metric.value += add
    elif metric.kind == "gauge":
        if spec.get("increment"):
            metric.value += 1
        elif spec.get("decrement"):
            metric.value -= 1
        elif add := _number(spec, "add"):
            metric.value += add
        elif subtract := _number(spec, "subtract"):
            metric.value -= subtract
        elif value := _number(spec, "set"):
            metric.value = value
        elif spec.get("set_to_current_time"):
            metric.value = time.time()
    elif spec.get("observe") is not None:
        metric.observe(_number(spec, "observe"))


def _cumulative(counts: list[int]) -> list[int]:
    total, out = 0, []
    for count in counts:
        total += count
        out.append(total)
    return out


def _go(value: float) -> str:
    """A sample value as Prometheus' own clients write it (1.0, -7.0, 1.79e+09, +Inf)."""
    return str(_untyped_go_float(value))  # type: ignore[no-untyped-call]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
