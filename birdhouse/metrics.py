"""Prometheus metrics, in the text exposition format (version 0.0.4).

A deliberately small registry: counters and gauges keyed by label tuples and
histograms with fixed buckets. Updates take a lock (they come from the event
loop and from worker threads); ``render`` builds the page on request.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable

LabelValues = tuple[str, ...]

FLUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = labels
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read when the page is rendered (no bookkeeping on hot paths)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self.read = read

    def lines(self) -> list[str]:
        return [f"{self.name} {_number(self.read())}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value

    @property
    def count(self) -> int:
        return sum(self._counts)

    def lines(self) -> list[str]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        out, running = [], 0
        for bound, count in zip(self.buckets, counts, strict=False):
            running += count
            out.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {running}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {sum(counts)}')
        out.append(f"{self.name}_sum {_number(total)}")
        out.append(f"{self.name}_count {sum(counts)}")
        return out


class Metrics:
    """Every metric birdhouse exports."""

    def __init__(self) -> None:
        self.requests = Counter(
            "birdhouse_http_requests_total", "HTTP requests by route, method and status.", ("route", "method", "status")
        )
        self.rows = Counter(
            "birdhouse_events_rows_total",
            "Rows accepted by /v0/events, by data source and result (ok or quarantined).",
            ("workspace", "datasource", "result"),
        )
        self.bytes_in = Counter(
            "birdhouse_events_bytes_total", "Wire bytes of accepted /v0/events bodies.", ("workspace", "datasource")
        )
        self.flushed_rows = Counter(
            "birdhouse_flush_rows_total", "Rows delivered to the backend by the flusher.", ("result",)
        )
        self.flush_seconds = Histogram(
            "birdhouse_flush_duration_seconds", "Time to deliver one WAL segment.", FLUSH_BUCKETS
        )
        self.backend_errors = Counter("birdhouse_backend_errors_total", "Failed backend deliveries by kind.", ("kind",))
        self.rate_limited = Counter(
            "birdhouse_rate_limited_total", "Requests refused by admission control.", ("reason",)
        )
        self._gauges: list[Gauge] = []

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._gauges.append(Gauge(name, help_text, read))

    def render(self) -> str:
        metrics: list[_Metric] = [
            self.requests,
            self.rows,
            self.bytes_in,
            self.flushed_rows,
            self.flush_seconds,
            self.backend_errors,
            self.rate_limited,
            *self._gauges,
        ]
        lines: list[str] = []
        for metric in metrics:
            lines += metric.header() + metric.lines()
        return "\n".join(lines) + "\n"
