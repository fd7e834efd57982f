"""A fourth department joins the mesh: travel, started by the host like the others.

Everything is real: a Consul dev agent with ACLs on (default deny) holding the
company's policy, HR and travel as processes (`python -m deptmesh.services.<name>`)
with their own tokens, on mTLS with their Connect certificates, callers with tokens and
Connect certificates of their own, spans in this run's trace store, metrics on
travel's Prometheus endpoint.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from prometheus_client.parser import text_string_to_metric_families

from deptmesh.common.v1 import money_pb2
from deptmesh.registry import ConsulRegistry, DevAgent, EndpointCache, ServiceInstance, Token
from deptmesh.services import intentions, quota_tiers
from deptmesh.sidecar import Tracing, connect
from deptmesh.sidecar.channel import mtls_channel_factory
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.identity import ConsulConnectIdentity, own_spiffe_id
from deptmesh.sidecar.tracing import attributes as attr
from deptmesh.sidecar.tracing.store import TraceStore
from deptmesh.travel.v1 import travel_pb2 as pb
from deptmesh.travel.v1 import travel_pb2_grpc
from tests.integration.servers import wait_for
from tests.rpc_errors import detail_of, rpc_error

REQUEST_TRIP = "/deptmesh.travel.v1.TripService/RequestTrip"
LIST_TRIPS = "/deptmesh.travel.v1.TripService/ListTrips"


def trip_request(request_id: str) -> pb.RequestTripRequest:
    departure = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=30)
    return pb.RequestTripRequest(
        traveller_id="E1002",
        destination="Lisbon, Portugal",
        purpose="PyCon",
        departure_date=departure.isoformat(),
        return_date=(departure + datetime.timedelta(days=4)).isoformat(),
        estimated_cost=money_pb2.Money(currency_code="EUR", units=900),
        request_id=request_id,
    )


def metrics(instance: ServiceInstance) -> dict[str, dict[tuple[str, ...], float]]:
    """Travel's Prometheus samples by name, keyed by (caller, method[, status])."""
    url = f"http://{instance.address}:{instance.meta['metrics_port']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(
                sample.labels[k] for k in ("caller", "method", "status") if k in sample.labels
            )
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def health_checks(agent: DevAgent, service: str, token: Token) -> list[dict[str, str]]:
    """The checks Consul runs for `service`'s instances, as its agent API shows them."""
    request = urllib.request.Request(  # the token in its header, never in the URL
        f"http://{agent.address}/v1/agent/checks", headers={"X-Consul-Token": token.secret_id}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        checks = json.loads(response.read())
    return [check for check in checks.values() if check["ServiceName"] == service]


class Caller:
    """A Connect service of the test's own: its certificate, tracing, a stub to travel."""

    def __init__(self, stack: ExitStack, agent: DevAgent, token: Token, name: str, store: Path):
        registry = ConsulRegistry(agent.address, token=token.secret_id)
        self.identity = ConsulConnectIdentity(registry, name)
        stack.callback(self.identity.stop)
        self.tracing = Tracing.start(name, store_path=store, spiffe_id=own_spiffe_id(self.identity))
        stack.callback(self.tracing.shutdown)
        cache = EndpointCache(registry)
        stack.callback(cache.close)
        channel = stack.enter_context(
            connect("travel", cache, identity=self.identity, tracing=self.tracing)
        )
        self.trips = travel_pb2_grpc.TripServiceStub(channel)


def test_travel_joins_the_mesh(tmp_path):
    """Travel registers in Consul with a passing gRPC health check on its health-only port,
    serves mTLS only, lets the caller the company policy allows file a trip (asking HR)
    and refuses the one it does not (PERMISSION_DENIED with ErrorInfo), counts both per
    caller on its metrics endpoint, traces them, and on SIGTERM finishes the call in
    flight, deregisters and exits 0."""
    store = Path(os.environ["DEPTMESH_TRACE_STORE"])
    with DevAgent() as agent, ExitStack() as stack:
        tokens = agent.admin().mesh_tokens(["hr", "travel", "self-service", "finance"])
        platform = ConsulRegistry(agent.address, token=tokens.platform.secret_id)
        intentions.apply(platform)
        quota_tiers.apply(platform)
        # What the test reads of the catalog, it reads as monitoring does.
        registry = ConsulRegistry(agent.address, token=tokens.monitoring.secret_id)

        def start(name: str, *flags: str) -> DepartmentProcess:
            token = tokens.department(name).write_file(tmp_path / f"{name}.token")
            process = stack.enter_context(
                DepartmentProcess(
                    f"deptmesh.services.{name}",
                    [
                        *("--port", "0", "--db", str(tmp_path / f"{name}.db")),
                        *("--consul-address", agent.address, "--consul-token-file", str(token)),
                        *flags,
                    ],
                    tmp_path / f"{name}.log",
                )
            )
            process.start()
            return process

        hr = start("hr", "--seed-demo-data")
        # HR may keep travel waiting as long as the grace: the drain below pauses HR.
        travel = start(
            "travel", "--drain-seconds", "0", "--grace-seconds", "30", "--hr-timeout-seconds", "30"
        )

        # Registered, and passing the health check Consul itself runs.
        [instance] = wait_for(lambda: registry.resolve("travel"), what="travel passing in Consul")
        wait_for(lambda: registry.resolve("hr"), what="hr passing in Consul")
        assert instance.endpoint == travel.address
        assert (instance.department, instance.contract_version) == ("travel", "v1")
        assert instance.tags == ("contract-v1",)
        [check] = health_checks(agent, "travel", tokens.monitoring)
        assert (check["Type"], check["Status"]) == ("grpc", "passing")
        # Consul reaches it on the plaintext port that serves grpc.health.v1 and nothing else.
        checked = re.fullmatch(r"gRPC check [0-9.]+:([0-9]+): success", check["Output"])
        assert checked is not None, check["Output"]
        assert int(checked[1]) != instance.port

        # mTLS only: a plaintext caller gets no service at all.
        with grpc.insecure_channel(travel.address) as plaintext:
            error = rpc_error(
                travel_pb2_grpc.TripServiceStub(plaintext).ListTrips, pb.ListTripsRequest(), 5
            )
        assert error.code() is grpc.StatusCode.UNAVAILABLE

        # The company policy: employees file trips through self-service; finance reads them.
        employee = Caller(stack, agent, tokens.department("self-service"), "self-service", store)
        with employee.tracing.span("trip request") as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
            trip = employee.trips.RequestTrip(trip_request("r1"), timeout=10).trip
        assert (trip.traveller_id, trip.cost_center_id) == ("E1002", "CC-ENG")

        finance = Caller(stack, agent, tokens.department("finance"), "finance", store)
        assert [t.trip_id for t in finance.trips.ListTrips(pb.ListTripsRequest()).trips] == [
            trip.trip_id
        ]
        refusal = rpc_error(finance.trips.RequestTrip, trip_request("f1"), 10)
        assert refusal.code() is grpc.StatusCode.PERMISSION_DENIED
        info = detail_of(refusal, error_details_pb2.ErrorInfo)
        assert info is not None
        assert info.reason == "ACCESS_DENIED"
        assert info.metadata["target"] == f"travel{REQUEST_TRIP}"
        assert info.metadata["rule"] == f"method rule {REQUEST_TRIP} allows only ['self-service']"

        # Metered per caller, on the endpoint its registration names.
        requests = metrics(instance)["deptmesh_rpc_server_requests_total"]
        assert requests[("self-service", REQUEST_TRIP, "OK")] == 1
        assert requests[("finance", LIST_TRIPS, "OK")] == 1
        assert requests[("finance", REQUEST_TRIP, "PERMISSION_DENIED")] == 1

        # SIGTERM with a call in flight: HR is paused, so travel's RequestTrip waits on it.
        hr.pause()
        probe = travel_pb2_grpc.TripServiceStub(
            stack.enter_context(mtls_channel_factory("travel", employee.identity)(travel.address))
        )
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(employee.trips.RequestTrip, trip_request("r2"), timeout=30)
            wait_for(
                lambda: metrics(instance)["deptmesh_rpc_server_in_flight"].get(
                    ("self-service", REQUEST_TRIP)
                ),
                what="the call in flight",
            )
            travel.send_signal(signal.SIGTERM)

            def refused() -> bool:
                try:
                    probe.GetTrip(pb.GetTripRequest(trip_id=trip.trip_id), timeout=2)
                except grpc.RpcError as error:
                    return error.code() is grpc.StatusCode.UNAVAILABLE
                return False

            wait_for(refused, what="travel to stop taking new calls")
            hr.resume()
            assert in_flight.result(30).trip.traveller_id == "E1002"
        assert travel.wait(30) == 0
        assert [i for i in registry.services() if i.service == "travel"] == []
    # Every process has stopped and flushed its spans: travel as it exited, hr and the
    # callers as the stack closed.

    with TraceStore(store) as traces:
        spans = traces.spans_of(trace_id)
    by_id = {span.span_id: span for span in spans}
    [served] = [s for s in spans if s.kind == "server" and s.service == "travel"]
    assert served.attributes["rpc.method"] == "RequestTrip"
    assert served.attributes[attr.CALLER_SERVICE] == "self-service"
    assert served.attributes["rpc.grpc.status_code"] == 0
    # Travel is a client too: its call to HR hangs under the server span it was handling.
    [asked] = [s for s in spans if s.kind == "server" and s.service == "hr"]
    assert asked.attributes[attr.CALLER_SERVICE] == "travel"
    assert by_id[by_id[asked.parent_span_id].parent_span_id] == served


pytestmark = pytest.mark.timeout(180)
