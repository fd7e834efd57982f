"""Metrics about the instance itself, which the alerting rules need, read at scrape time:

    deptmesh_connect_leaf_expiry_timestamp_seconds          when its certificate expires
    deptmesh_registry_cache_staleness_seconds {watched_service}
                                                            age of the endpoints it routes to
    deptmesh_trace_store_spans                              spans its trace store holds
    deptmesh_trace_store_capacity_spans                     ... and their bound
    deptmesh_usage_spool_records                            usage records waiting for the ledger
    deptmesh_usage_spool_capacity_records                   ... and their bound

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
from deptmesh.sidecar.metering.spool import UsageSpool

__all__ = ["InstanceCollector", "usage_spool_fill"]

Fill = Callable[[], tuple[int, int] | None]  # (held, bound), or None: there is none


def usage_spool_fill(spool: UsageSpool | None) -> Fill:
    """The records a usage spool holds and its bound (a count at each scrape)."""
    if spool is None:
        return lambda: None
    return lambda: (spool.waiting_records(), spool.max_records)


class InstanceCollector:
    """A prometheus_client collector of the instance's certificate expiry, cache ages and
    trace store and usage spool fill (each returns (held, bound), or None for none)."""

    def __init__(
        self,
        identity: IdentitySource | None,
        staleness: Callable[[], Mapping[str, float]],
        trace_store: Fill = lambda: None,
        usage_spool: Fill = lambda: None,
    ) -> None:
        self._identity = identity
        self._staleness = staleness
        self._trace_store = trace_store
        self._usage_spool = usage_spool
        # The last certificate parsed and its expiry: parsed again only once renewed.
        self._parsed: tuple[bytes, float] = (b"", 0.0)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        leaf, caches, spans, capacity, spooled, spool_capacity = self._families()
        if self._identity is not None:
            leaf.add_metric([], self._expiry(self._identity().certificate_pem))
        for service, seconds in sorted(self._staleness().items()):
            caches.add_metric([service], seconds)
        for (held, bound), fill in (
            ((spans, capacity), self._trace_store()),
            ((spooled, spool_capacity), self._usage_spool()),
        ):
            if fill is not None:
                held.add_metric([], fill[0])
                bound.add_metric([], fill[1])
        return (leaf, caches, spans, capacity, spooled, spool_capacity)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
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
            GaugeMetricFamily(
                "deptmesh_usage_spool_records", "Usage records waiting in the spool for the ledger."
            ),
            GaugeMetricFamily(
                "deptmesh_usage_spool_capacity_records",
                "The usage spool's bound: past it, the oldest batches are dropped (and counted).",
            ),
        )

    def _expiry(self, certificate_pem: bytes) -> float:
        if certificate_pem != self._parsed[0]:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
            self._parsed = (certificate_pem, certificate.not_valid_after_utc.timestamp())
        return self._parsed[1]
