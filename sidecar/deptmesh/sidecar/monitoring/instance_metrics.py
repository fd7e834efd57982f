"""Metrics about the instance itself, which the alerting rules need, read at scrape time:

    deptmesh_connect_leaf_expiry_timestamp_seconds          when its certificate expires
    deptmesh_registry_cache_staleness_seconds {watched_service}
                                                            age of the endpoints it routes to
    deptmesh_trace_store_spans                              spans its trace store holds
    deptmesh_trace_store_capacity_spans                     ... and their bound

The certificate is the one the identity source serves now, so a renewed leaf
moves the timestamp forward; a leaf that does not move within 24 h of expiring
is alerted on. The staleness is the time since the registry last answered about
a service this instance calls. The trace store is counted at each scrape (a
count of its spans: milliseconds). Nothing here runs on the call path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from cryptography import x509
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from deptmesh.sidecar.identity import IdentitySource

__all__ = ["InstanceCollector"]


class InstanceCollector:
    """A prometheus_client collector of the instance's certificate expiry, cache ages and
    trace store fill (`trace_store` returns (spans, bound), or None for no store)."""

    def __init__(
        self,
        identity: IdentitySource | None,
        staleness: Callable[[], Mapping[str, float]],
        trace_store: Callable[[], tuple[int, int] | None] = lambda: None,
    ) -> None:
        self._identity = identity
        self._staleness = staleness
        self._trace_store = trace_store
        # The last certificate parsed and its expiry: parsed again only once renewed.
        self._parsed: tuple[bytes, float] = (b"", 0.0)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        leaf, caches, spans, capacity = self._families()
        if self._identity is not None:
            leaf.add_metric([], self._expiry(self._identity().certificate_pem))
        for service, seconds in sorted(self._staleness().items()):
            caches.add_metric([service], seconds)
        fill = self._trace_store()
        if fill is not None:
            spans.add_metric([], fill[0])
            capacity.add_metric([], fill[1])
        return (leaf, caches, spans, capacity)

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily
    ]:
        return (
            GaugeMetricFamily(
                "deptmesh_connect_leaf_expiry_timestamp_seconds",
                "When the certificate this instance serves with expires (Unix time).",
            ),
            GaugeMetricFamily(
                "deptmesh_registry_cache_staleness_seconds",
                "Seconds since the registry last answered about a service this instance calls.",
                labels=["watched_service"],
            ),
            GaugeMetricFamily(
                "deptmesh_trace_store_spans", "Spans the trace store this instance writes holds."
            ),
            GaugeMetricFamily(
                "deptmesh_trace_store_capacity_spans",
                "The trace store's bound: past it, the oldest traces are dropped.",
            ),
        )

    def _expiry(self, certificate_pem: bytes) -> float:
        if certificate_pem != self._parsed[0]:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
            self._parsed = (certificate_pem, certificate.not_valid_after_utc.timestamp())
        return self._parsed[1]
