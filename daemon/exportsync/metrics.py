"""Prometheus metrics: counters at the request and intake boundaries, gauges read from the spool.

The gauges (items by state, the day's quota) are not kept twice: `SpoolCollector` reads them from
the spool at each scrape, through its own connection, as `exportsync status` does. Counters and
the latency histogram live in `Metrics`, fed by `MeteredApi` (every request and its outcome, the
bytes sent), the daemon's intake (files detected) and the delivery step (a delivered item).
Counters start at zero with each process, as Prometheus expects.

prometheus_client is imported only once metrics are on (`Metrics()`): a daemon without
`metrics.listen` never loads it. The endpoint is a `QuietServer`, whose thread sleeps until a
scraper connects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, TypeAlias, TypeVar

from exportsync.errors import (
    DeliveryError,
    Forbidden,
    PermanentError,
    QuotaExhausted,
    RequestTooLarge,
    Throttled,
    Unreachable,
)
from exportsync.spool import Item, State
from exportsync_wire import routes

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from exportsync.client import Api, BatchRequest
    from exportsync.quietserver import QuietServer

__all__ = [
    "DELIVERY_BUCKETS",
    "MeteredApi",
    "Metrics",
    "MetricsServer",
    "SpoolCollector",
    "SpoolReading",
    "outcome_of",
    "serve_metrics",
]

_T = TypeVar("_T")

# Close of the file to the API's answer: seconds with a free quota, hours or days on a busy one.
DELIVERY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 3 * 86400.0)
_STATES: tuple[State, ...] = ("pending", "sending", "delivered", "failed")


class Metrics:
    """The process's counters and histogram, in a registry of their own."""

    def __init__(self) -> None:
        # Here, not at the top: a daemon without metrics never loads prometheus_client.
        from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: PLC0415

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "exportsync_requests",
            "Requests to the API (and presigned PUTs), by route and outcome.",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.files_detected = Counter(
            "exportsync_files_detected",
            "Completely written files seen in the watch folder.",
            registry=self.registry,
        )
        self.bytes_sent = Counter(
            "exportsync_bytes_sent",
            "Payload bytes sent (files and sessions) in requests that were answered.",
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "exportsync_delivery_seconds",
            "Seconds from the file's last write (close) to the API's answer that delivered it.",
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )

    def file_detected(self) -> None:
        self.files_detected.inc()

    def request(self, route: str, outcome: str, sent_bytes: int = 0) -> None:
        self.requests.labels(route=route, outcome=outcome).inc()
        if sent_bytes:
            self.bytes_sent.inc(sent_bytes)

    def delivered(self, item: Item, now: float) -> None:
        self.delivery_seconds.observe(max(0.0, now - item.mtime_ns / 1e9))


def outcome_of(exc: BaseException | None) -> str:
    """A short, stable label for how a request ended."""
    if exc is None:
        return "ok"
    for kind, label in _OUTCOMES:
        if isinstance(exc, kind):
            return label
    return "transient" if isinstance(exc, DeliveryError) else "error"


_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (Throttled, "throttled"),
    (QuotaExhausted, "quota_exhausted"),
    (Forbidden, "forbidden"),
    (RequestTooLarge, "too_large"),
    (Unreachable, "unreachable"),
    (PermanentError, "refused"),
)


def _label(route: str) -> str:
    """A route's metric label: its path without the slash ("/upload" -> "upload")."""
    return route.removeprefix("/")


class MeteredApi:
    """An `Api` that counts each request, its outcome and the bytes it carried."""

    def __init__(self, api: Api, metrics: Metrics) -> None:
        self._api = api
        self._metrics = metrics

    def batch(self, request: BatchRequest) -> list[dict[str, object]]:
        size = sum(len(f.data) for f in request.files) + sum(len(b) for b in request.sessions)
        return self._count(_label(routes.BATCH), size, lambda: self._api.batch(request))

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> str | None:
        # The verified file stream knows its length (requests sends it as Content-Length).
        size = len(body) if isinstance(body, Sized) else 0
        return self._count(
            "presigned_put", size, lambda: self._api.put_presigned(url, headers, body)
        )

    def complete_multipart(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        self._count(
            "multipart_complete", 0, lambda: self._api.complete_multipart(url, body, headers)
        )

    def close(self) -> None:
        close = getattr(self._api, "close", None)
        if callable(close):
            close()

    def _count(self, route: str, size: int, call: Callable[[], _T]) -> _T:
        try:
            result = call()
        except BaseException as exc:
            self._metrics.request(route, outcome_of(exc))
            raise
        self._metrics.request(route, "ok", size)
        return result


@dataclass(frozen=True)
class SpoolReading:
    """What the gauges show, read from the spool at scrape time."""

    counts: Mapping[State, int]
    quota_used: int
    quota_limit: int | None
    resets_at: float | None


class SpoolCollector:
    """Gauges straight from the spool: nothing to keep in step with the delivery code. (A
    registry takes any object with `collect()`.)"""

    def __init__(self, read: Callable[[], SpoolReading]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily  # noqa: PLC0415 -- see Metrics

        reading = self._read()
        items = GaugeMetricFamily(
            "exportsync_items", "Items in the spool, by state.", labels=["state"]
        )
        for state in _STATES:
            items.add_metric([state], reading.counts.get(state, 0))
        yield items
        yield GaugeMetricFamily(
            "exportsync_quota_used", "Requests counted against today's quota.", reading.quota_used
        )
        if reading.quota_limit is not None:  # no daily limit: no such gauge
            yield GaugeMetricFamily(
                "exportsync_quota_limit",
                "Requests the usage plan allows per day.",
                reading.quota_limit,
            )
        if reading.resets_at is not None:
            yield GaugeMetricFamily(
                "exportsync_quota_resets_at_seconds",
                "When the day's quota resets (Unix time).",
                reading.resets_at,
            )


# The running /metrics endpoint: `address` is where it really listens (port 0 resolved),
# `close()` stops it. (A name for annotations: the server module is loaded with metrics on.)
MetricsServer: TypeAlias = "QuietServer"


def serve_metrics(
    metrics: Metrics, read: Callable[[], SpoolReading], host: str, port: int
) -> QuietServer:
    """Serve Prometheus text on host:port (every path answers with the metrics)."""
    from prometheus_client import make_wsgi_app  # noqa: PLC0415 -- see Metrics

    from exportsync.quietserver import QuietServer  # noqa: PLC0415 -- with metrics on only

    metrics.registry.register(SpoolCollector(read))
    return QuietServer(make_wsgi_app(metrics.registry), host, port)
