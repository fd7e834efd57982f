"""The Prometheus endpoint on a real mTLS server, scraped over HTTP.

Counts per (caller, method, status), latency histograms, in-flight gauges,
denials and throttles, as Prometheus reads them. Every case that calls a server
runs on the sync and the asyncio server.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.sidecar.metering.metrics import MetricsEndpoint, UsageCollector
from deptmesh.sidecar.metering.stage import MeteringStage
from tests.integration.gated_finance import (
    RESPONSE,
    MeteredFinance,
    quota_policy,
)
from tests.security.mtls import channel_as

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
REQUEST = finance_pb2.PayoutRequest(memo="metered")

REQUESTS = "deptmesh_rpc_server_requests_total"
DURATION = "deptmesh_rpc_server_duration_seconds"
IN_FLIGHT = "deptmesh_rpc_server_in_flight"
# The duration histogram's bucket bounds as Prometheus sees them: dashboards and the
# SLO rules are written against these, so they are pinned, not imported.
LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"]


class Finance(MeteredFinance):
    """The metered finance server, and its metrics endpoint."""

    def __init__(self, flavour: str) -> None:
        super().__init__(flavour)
        self.endpoint = MetricsEndpoint([self.usage])

    def payout(self, caller: str) -> str:
        """The status name of one Payout as `caller`."""
        with channel_as(caller, self.address) as channel:
            try:
                finance_pb2_grpc.PaymentServiceStub(channel).Payout(REQUEST, timeout=10)
            except grpc.RpcError as error:
                return error.code().name
        return "OK"

    def mixed_calls(self) -> None:
        """Two OK and one throttled from reimbursement, one denied (hr), one OK from payroll."""
        outcomes = [self.payout("reimbursement") for _ in range(3)]
        outcomes += [self.payout("hr"), self.payout("payroll")]
        assert outcomes == ["OK", "OK", "RESOURCE_EXHAUSTED", "PERMISSION_DENIED", "OK"]

    def scrape(self) -> list[Sample]:
        return scrape(self.endpoint.port)


@pytest.fixture(params=["sync", "aio"])
def finance(request):
    server = Finance(request.param)
    yield server
    server.endpoint.close()
    server.server.stop(0)


def scrape(port: int) -> list[Sample]:
    """Every sample GET /metrics serves, parsed as Prometheus parses the text format."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def series(samples: list[Sample], name: str, *labels: str, **where: str) -> dict:
    """(values of `labels`, or the value of the one label) -> value, of each sample
    `name` whose labels include `where`."""
    found = {
        tuple(sample.labels[label] for label in labels): sample.value
        for sample in samples
        if sample.name == name and where.items() <= sample.labels.items()
    }
    return {key[0]: value for key, value in found.items()} if len(labels) == 1 else found


def per_caller(samples: list[Sample], name: str) -> dict[str, float]:
    """caller -> value of a {service, caller, method} metric, checking service and method."""
    found = series(samples, name, "service", "method", "caller")
    assert {(service, method) for service, method, _ in found} <= {("finance", PAYOUT)}
    return {caller: value for (_, _, caller), value in found.items()}


class TestCounts:
    def test_requests_per_caller_method_and_status(self, finance):
        """Each (caller, method, status) has its own request counter with the exact count."""
        finance.mixed_calls()
        assert series(finance.scrape(), REQUESTS, "service", "caller", "method", "status") == {
            ("finance", "reimbursement", PAYOUT, "OK"): 2,
            ("finance", "reimbursement", PAYOUT, "RESOURCE_EXHAUSTED"): 1,
            ("finance", "hr", PAYOUT, "PERMISSION_DENIED"): 1,
            ("finance", "payroll", PAYOUT, "OK"): 1,
        }

    def test_denials_throttles_and_errors(self, finance):
        """Denied, throttled and errored calls are counted per (caller, method); every pair
        seen has a series, zero included."""
        finance.mixed_calls()
        samples = finance.scrape()
        zero = {"reimbursement": 0, "hr": 0, "payroll": 0}
        assert per_caller(samples, "deptmesh_rpc_server_denied_total") == zero | {"hr": 1}
        assert per_caller(samples, "deptmesh_rpc_server_throttled_total") == zero | {
            "reimbursement": 1
        }
        assert per_caller(samples, "deptmesh_rpc_server_shadow_throttled_total") == zero
        # A throttle is not an error; a denial is.
        assert per_caller(samples, "deptmesh_rpc_server_errors_total") == zero | {"hr": 1}

    def test_request_and_response_bytes(self, finance):
        """Bytes are the messages' sizes: every call that arrived has a request, only the
        calls that ran have a response."""
        finance.mixed_calls()
        samples = finance.scrape()
        request, response = REQUEST.ByteSize(), RESPONSE.ByteSize()
        assert per_caller(samples, "deptmesh_rpc_server_request_bytes_total") == {
            "reimbursement": 3 * request,
            "hr": request,
            "payroll": request,
        }
        assert per_caller(samples, "deptmesh_rpc_server_response_bytes_total") == {
            "reimbursement": 2 * response,
            "hr": 0,
            "payroll": response,
        }

    def test_shadow_throttles(self, finance):
        """A shadow tier lets every call through and counts the ones it would have refused."""
        finance.policy = quota_policy(
            standard={"rate": 0.001, "burst": 1, "max_in_flight": 10, "shadow": True}
        )
        assert [finance.payout("reimbursement") for _ in range(3)] == ["OK"] * 3
        samples = finance.scrape()
        assert per_caller(samples, "deptmesh_rpc_server_shadow_throttled_total") == {
            "reimbursement": 2
        }
        assert per_caller(samples, "deptmesh_rpc_server_throttled_total") == {"reimbursement": 0}
        assert series(samples, REQUESTS, "caller", "status") == {("reimbursement", "OK"): 3}


class TestLatencyHistogram:
    def test_every_call_is_in_the_histogram(self, finance):
        """Per (caller, method, status) the histogram's count and +Inf bucket are the calls,
        its buckets are the metering stage's bounds and cumulative, and its sum its total."""
        finance.mixed_calls()
        samples = finance.scrape()
        requests = series(samples, REQUESTS, "caller", "method", "status")
        counts = series(samples, f"{DURATION}_count", "caller", "method", "status")
        sums = series(samples, f"{DURATION}_sum", "caller", "method", "status")
        totals = {
            (r["caller"], r["method"], r["status"]): r["latency_ms_total"] / 1e3
            for r in finance.usage.snapshot()
        }
        assert counts == requests
        assert sums == pytest.approx(totals)
        assert all(value > 0 for value in sums.values())
        for (caller, method, status), calls in requests.items():
            where = {"caller": caller, "method": method, "status": status}
            buckets = series(samples, f"{DURATION}_bucket", "le", **where)
            assert list(buckets) == LE
            assert buckets["+Inf"] == calls
            assert list(buckets.values()) == sorted(buckets.values())

    def test_a_slow_call_is_above_the_fast_buckets(self, finance):
        """A call held 60 ms is counted in no bucket up to 50 ms, and in +Inf."""
        finance.handler.hold_seconds = 0.06
        assert finance.payout("payroll") == "OK"
        buckets = series(finance.scrape(), f"{DURATION}_bucket", "le", caller="payroll")
        assert [buckets[le] for le in ("0.005", "0.01", "0.025", "0.05", "+Inf")] == [0] * 4 + [1]


class TestInFlight:
    def test_gauge_is_one_while_a_call_runs_and_zero_after(self, finance):
        """A call held in its handler shows in the gauge; once it ended the gauge reads 0."""
        finance.handler.gate.clear()
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(finance.payout, "reimbursement")
            try:
                assert finance.handler.entered.wait(10)
                during = series(finance.scrape(), IN_FLIGHT, "service", "caller", "method")
            finally:
                finance.handler.gate.set()
            assert held.result(timeout=10) == "OK"
        after = series(finance.scrape(), IN_FLIGHT, "service", "caller", "method")
        assert during == {("finance", "reimbursement", PAYOUT): 1}
        assert after == {("finance", "reimbursement", PAYOUT): 0}


class TestEndpoint:
    def test_close_releases_the_port(self):
        """After close the port refuses connections and a new endpoint can bind it."""
        endpoint = MetricsEndpoint([MeteringStage("hr")])
        port = endpoint.port
        assert scrape(port) == []
        endpoint.close()
        endpoint.close()  # again: nothing to do
        with pytest.raises(urllib.error.URLError):
            scrape(port)
        with MetricsEndpoint([MeteringStage("hr")], port=port) as again:
            assert again.port == port
            assert scrape(port) == []

    def test_endpoints_in_one_process_have_their_own_registries(self, finance):
        """A second endpoint over the same usage serves the same counts; neither uses the
        global registry."""
        finance.mixed_calls()
        with MetricsEndpoint([finance.usage, MeteringStage("hr")]) as second:
            first_requests = series(finance.scrape(), REQUESTS, "service", "caller", "status")
            second_requests = series(scrape(second.port), REQUESTS, "service", "caller", "status")
        assert second_requests == first_requests
        assert len(first_requests) == 4

    def test_one_usage_per_service(self):
        """Two usages named for one service would repeat series, so they are refused."""
        with pytest.raises(ValueError, match="several for hr"):
            UsageCollector([MeteringStage("hr"), MeteringStage("finance"), MeteringStage("hr")])
