"""OTLP/gRPC export to a real receiver: the OTLP TraceService from opentelemetry-proto.

The receiver is a grpc server implementing the collector's service definition;
the test asserts the spans as they arrived over the wire.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.identity.sources import dev_ca_identity
from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing import attributes as attr
from tests.security.mtls import CA


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span it is sent, with the service name of its resource."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []
        self._lock = threading.Lock()

    def Export(self, request, context):
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                )
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class Hr(hr_pb2_grpc.EmployeeServiceServicer):
    def GetEmployee(self, request, context):
        return hr_pb2.GetEmployeeResponse()


def attributes(span) -> dict[str, object]:
    values = {}
    for item in span.attributes:
        value = item.value
        values[item.key] = getattr(value, value.WhichOneof("value"))
    return values


def test_spans_arrive_at_an_otlp_receiver():
    """Server and client spans exported over OTLP/gRPC arrive with their names, kinds,
    parent link, identities and the service of each side."""
    receiver = Receiver()
    collector = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)
    endpoint = f"127.0.0.1:{collector.add_insecure_port('127.0.0.1:0')}"
    collector.start()
    hr_tracing = Tracing.start("hr", exporter="otlp", otlp_endpoint=endpoint)
    caller_tracing = Tracing.start(
        "reimbursement",
        exporter="otlp",
        otlp_endpoint=endpoint,
        spiffe_id=CA.spiffe_id("reimbursement").uri,
    )
    access = AccessPolicy([Intention("reimbursement", "hr", "allow")], MethodRules({}))
    server = Server(
        identity_source=dev_ca_identity(CA, "hr"),
        authorization=("hr", lambda: access),
        tracing=hr_tracing,
    )
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        Hr(),
    )
    port = server.start("127.0.0.1:0")
    cache = EndpointCache(StaticRegistry([instance_of("hr", "127.0.0.1", port)]))
    channel = client.connect(
        "hr", cache, identity=dev_ca_identity(CA, "reimbursement"), tracing=caller_tracing
    )
    try:
        hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
            hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5
        )
    finally:
        channel.close()
        cache.close()
        server.stop(0)
        hr_tracing.shutdown()  # exports what the batch processor still holds
        caller_tracing.shutdown()
        collector.stop(0)

    # One span per side, each exactly once: a dict would hide a span exported twice.
    assert sorted(service for service, _ in receiver.spans) == ["hr", "reimbursement"]
    by_service = dict(receiver.spans)
    server_span, client_span = by_service["hr"], by_service["reimbursement"]
    assert server_span.name == client_span.name == "deptmesh.hr.v1.EmployeeService/GetEmployee"
    assert server_span.kind == server_span.SPAN_KIND_SERVER
    assert client_span.kind == client_span.SPAN_KIND_CLIENT
    assert server_span.trace_id == client_span.trace_id
    assert server_span.parent_span_id == client_span.span_id
    server_attributes = attributes(server_span)
    assert server_attributes["rpc.system"] == "grpc"
    assert server_attributes["rpc.grpc.status_code"] == 0
    assert server_attributes[attr.CALLER_SPIFFE_ID] == CA.spiffe_id("reimbursement").uri
    assert attributes(client_span)[attr.CALLEE_SERVICE] == "hr"
