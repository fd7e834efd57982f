"""The instance's own metrics for the alerting rules: its certificate's expiry, moving
with each renewal, the age of the endpoints it routes to, and how full its trace store
and usage spool are."""

from __future__ import annotations

import datetime

from cryptography import x509
from prometheus_client import CollectorRegistry, generate_latest

from deptmesh.metering.v1 import metering_pb2
from deptmesh.sidecar.identity import ServerIdentity
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.metering.spool import UsageSpool
from deptmesh.sidecar.monitoring import InstanceCollector, usage_spool_fill


def _identity(ca: DevCertificateAuthority, hours: int) -> ServerIdentity:
    leaf = ca.issue("hr", valid_for=datetime.timedelta(hours=hours))
    return ServerIdentity(leaf.private_key_pem, leaf.certificate_pem, ca.ca_pem, ca.trust_domain)


def _expiry(identity: ServerIdentity) -> float:
    certificate = x509.load_pem_x509_certificate(identity.certificate_pem)
    return certificate.not_valid_after_utc.timestamp()


def _samples(collector: InstanceCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


class TestInstanceCollector:
    def test_the_leaf_expiry_follows_the_certificate_served(self) -> None:
        """The timestamp is the served certificate's notAfter, and moves when it is renewed."""
        ca = DevCertificateAuthority()
        served = [_identity(ca, 2)]
        collector = InstanceCollector(lambda: served[0], dict)
        name = ("deptmesh_connect_leaf_expiry_timestamp_seconds", ())
        assert _samples(collector)[name] == _expiry(served[0])
        served[0] = _identity(ca, 72)
        assert _samples(collector)[name] == _expiry(served[0])

    def test_each_watched_service_has_its_staleness(self) -> None:
        """The cache's age per service called is exported with the service as a label."""
        collector = InstanceCollector(None, lambda: {"finance": 3.5, "hr": 0.2})
        samples = _samples(collector)
        name = "deptmesh_registry_cache_staleness_seconds"
        assert samples[(name, (("watched_service", "finance"),))] == 3.5
        assert samples[(name, (("watched_service", "hr"),))] == 0.2
        assert not [key for key in samples if key[0].startswith("deptmesh_connect_leaf")]

    def test_it_renders_as_prometheus_text(self) -> None:
        """The registry renders both families (the endpoint serves this text)."""
        registry = CollectorRegistry()
        registry.register(InstanceCollector(lambda: _identity(DevCertificateAuthority(), 1), dict))
        text = generate_latest(registry).decode()
        assert "# TYPE deptmesh_connect_leaf_expiry_timestamp_seconds gauge" in text
        assert "# TYPE deptmesh_registry_cache_staleness_seconds gauge" in text

    def test_the_trace_store_fill_is_exported_when_there_is_a_store(self) -> None:
        """Spans held and the bound, as two gauges; neither without a store."""
        samples = _samples(InstanceCollector(None, dict, lambda: (950, 1000)))
        assert samples[("deptmesh_trace_store_spans", ())] == 950
        assert samples[("deptmesh_trace_store_capacity_spans", ())] == 1000
        without = _samples(InstanceCollector(None, dict))
        assert not [key for key in without if key[0].startswith("deptmesh_trace_store")]

    def test_the_usage_spool_fill_counts_the_records_waiting(self, tmp_path) -> None:
        """Records waiting in a real spool and its bound, as two gauges; neither without one."""
        spool = UsageSpool(tmp_path / "usage.sqlite", max_records=500)
        try:
            records = [metering_pb2.UsageRecord(record_id=f"r{i}") for i in range(3)]
            spool.append(metering_pb2.ReportUsageRequest(records=records))
            samples = _samples(InstanceCollector(None, dict, usage_spool=usage_spool_fill(spool)))
        finally:
            spool.close()
        assert samples[("deptmesh_usage_spool_records", ())] == 3
        assert samples[("deptmesh_usage_spool_capacity_records", ())] == 500
        without = _samples(InstanceCollector(None, dict, usage_spool=usage_spool_fill(None)))
        assert not [key for key in without if key[0].startswith("deptmesh_usage_spool")]
