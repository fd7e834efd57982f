"""Prometheus metrics per (caller, method, status), read from MeteringStage when scraped.

The server chain's MeteringStage stage already counts every call; this module renders
those counters as Prometheus metrics at scrape time and adds nothing to the
call path. Instrumenting each call with prometheus_client metrics instead
(label lookups, counter and histogram updates, an in-flight gauge) measured
5.3 µs per call, more than twice what MeteringStage's own counting costs (2.2 µs); a
scrape instead costs about 0.13 ms per (caller, method, status) series.

    deptmesh_rpc_server_requests_total          {service, caller, method, status}
    deptmesh_rpc_server_duration_seconds        {service, caller, method, status} histogram
    deptmesh_rpc_server_in_flight               {service, caller, method} gauge
    deptmesh_rpc_server_denied_total            {service, caller, method} PERMISSION_DENIED
    deptmesh_rpc_server_throttled_total         {service, caller, method} RESOURCE_EXHAUSTED
    deptmesh_rpc_server_shadow_throttled_total  {service, caller, method} would have been
    deptmesh_rpc_server_errors_total            {service, caller, method} not OK, not throttled
    deptmesh_rpc_server_request_bytes_total     {service, caller, method}
    deptmesh_rpc_server_response_bytes_total    {service, caller, method}

`caller` is the verified caller's service name (empty on a plaintext server).
A (caller, method) pair, once seen, keeps its series: the in-flight gauge reads
0 and the denial and throttle counters 0 rather than disappearing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from deptmesh.sidecar.metering.stage import LATENCY_BUCKETS_S, MeteringStage

__all__ = ["MetricsEndpoint", "UsageCollector"]

_PREFIX = "deptmesh_rpc_server_"
_PER_STATUS = ("service", "caller", "method", "status")
_PER_METHOD = ("service", "caller", "method")
# Prometheus's `le` labels for MeteringStage's bucket bounds ("0.005" ... "10.0", as
# prometheus_client writes them); MeteringStage's last bucket is +Inf.
_LE = (*(repr(float(bound)) for bound in LATENCY_BUCKETS_S), "+Inf")


@dataclass(slots=True)
class _MethodTotals:
    """One (caller, method)'s counts summed over its statuses."""

    denied: int = 0
    throttled: int = 0
    shadow_throttled: int = 0
    errors: int = 0
    request_bytes: int = 0
    response_bytes: int = 0

    def add(self, record: dict[str, Any]) -> None:
        if record["status"] == "PERMISSION_DENIED":
            self.denied += record["calls"]
        self.throttled += record["throttled"]
        self.shadow_throttled += record["shadow_throttled"]
        self.errors += record["errors"]
        self.request_bytes += record["request_bytes"]
        self.response_bytes += record["response_bytes"]


@dataclass(slots=True)
class _Families:
    requests: CounterMetricFamily
    duration: HistogramMetricFamily
    in_flight: GaugeMetricFamily
    denied: CounterMetricFamily
    throttled: CounterMetricFamily
    shadow_throttled: CounterMetricFamily
    errors: CounterMetricFamily
    request_bytes: CounterMetricFamily
    response_bytes: CounterMetricFamily

    @classmethod
    def empty(cls) -> _Families:
        def counter(name: str, help_text: str, labels: Sequence[str]) -> CounterMetricFamily:
            return CounterMetricFamily(f"{_PREFIX}{name}_total", help_text, labels=labels)

        return cls(
            requests=counter(
                "requests", "Calls finished, by caller, method and status.", _PER_STATUS
            ),
            duration=HistogramMetricFamily(
                f"{_PREFIX}duration_seconds",
                "Time from a call's arrival to its status, in seconds.",
                labels=_PER_STATUS,
            ),
            in_flight=GaugeMetricFamily(
                f"{_PREFIX}in_flight", "Calls running now.", labels=_PER_METHOD
            ),
            denied=counter("denied", "Calls refused PERMISSION_DENIED.", _PER_METHOD),
            throttled=counter("throttled", "Calls refused by the caller's quota.", _PER_METHOD),
            shadow_throttled=counter(
                "shadow_throttled",
                "Calls a quota tier in shadow mode would have refused, and let through.",
                _PER_METHOD,
            ),
            errors=counter(
                "errors", "Calls that ended with an error other than a throttle.", _PER_METHOD
            ),
            request_bytes=counter("request_bytes", "Request message bytes.", _PER_METHOD),
            response_bytes=counter("response_bytes", "Response message bytes.", _PER_METHOD),
        )

    def __iter__(self) -> Iterator[Metric]:
        return iter(
            (
                self.requests,
                self.duration,
                self.in_flight,
                self.denied,
                self.throttled,
                self.shadow_throttled,
                self.errors,
                self.request_bytes,
                self.response_bytes,
            )
        )


def _cumulative(latency_counts: Sequence[int]) -> list[tuple[str, float]]:
    """MeteringStage's calls per bucket as Prometheus's calls at or under each bound."""
    buckets: list[tuple[str, float]] = []
    total = 0
    for le, count in zip(_LE, latency_counts, strict=True):
        total += count
        buckets.append((le, total))
    return buckets


class UsageCollector:
    """A prometheus_client collector of the usages' counters: the work is done per scrape."""

    def __init__(self, usages: Sequence[MeteringStage]) -> None:
        services = [usage.service for usage in usages]
        repeated = sorted({service for service in services if services.count(service) > 1})
        if repeated:
            raise ValueError(
                f"one MeteringStage per service, got several for {', '.join(repeated)}"
            )
        self._usages = tuple(usages)

    def describe(self) -> Iterable[Metric]:
        """The metric names, without samples: the registry checks them for clashes."""
        return _Families.empty()

    def collect(self) -> Iterable[Metric]:
        families = _Families.empty()
        for usage in self._usages:
            self._add(families, usage)
        return families

    @staticmethod
    def _add(families: _Families, usage: MeteringStage) -> None:
        service = usage.service
        in_flight = usage.in_flight()
        per_method = {key: _MethodTotals() for key in in_flight}
        for record in usage.snapshot():
            caller, method = record["caller"], record["method"]
            call_labels = (service, caller, method, record["status"])
            families.requests.add_metric(call_labels, record["calls"])
            families.duration.add_metric(
                call_labels, _cumulative(record["latency_counts"]), record["latency_ms_total"] / 1e3
            )
            per_method.setdefault((caller, method), _MethodTotals()).add(record)
        for (caller, method), totals in sorted(per_method.items()):
            labels = (service, caller, method)
            families.in_flight.add_metric(labels, in_flight.get((caller, method), 0))
            families.denied.add_metric(labels, totals.denied)
            families.throttled.add_metric(labels, totals.throttled)
            families.shadow_throttled.add_metric(labels, totals.shadow_throttled)
            families.errors.add_metric(labels, totals.errors)
            families.request_bytes.add_metric(labels, totals.request_bytes)
            families.response_bytes.add_metric(labels, totals.response_bytes)


class MetricsEndpoint:
    """This process's Prometheus text endpoint: GET /metrics renders the usages' counters.

    It serves from its own registry (not prometheus_client's global one) on a
    daemon thread; port 0 picks a free port, read back from `port`.
    """

    def __init__(
        self, usages: Sequence[MeteringStage], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(UsageCollector(usages))
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        self.port: int = self._server.server_port
        self._closing = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Stops serving and releases the port; closing again does nothing.

        Takes up to half a second: prometheus_client's server checks for shutdown
        every 0.5 s.
        """
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
