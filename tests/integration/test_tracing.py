"""Tracing across real mTLS servers: spans, parent links, identities, denials, baggage.

Each process-to-be is a Tracing of its own (its service name on its spans); all
of them hand their spans to one in-memory exporter so the test sees the trace.
Servers run sync and asyncio.
"""

from __future__ import annotations

import asyncio
import io
import json

import grpc
import pytest
import structlog
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from structlog.testing import capture_logs

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.static import StaticRegistry
from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.identity.sources import dev_ca_identity
from deptmesh.sidecar.logs import add_trace_context
from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing import attributes as attr
from deptmesh.sidecar.tracing.tags import key_attribute
from tests.aio_servers import AioServerThread
from tests.security.mtls import CA

GET_EMPLOYEE = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
_log = structlog.get_logger("test.handler")


class Hr(hr_pb2_grpc.EmployeeServiceServicer):
    """Logs one line per call and remembers the baggage it saw."""

    def __init__(self) -> None:
        self.baggage: list[dict[str, object]] = []

    def GetEmployee(self, request, context):
        self.baggage.append(dict(baggage.get_all()))
        _log.info("looked_up", employee_id=request.employee_id)
        return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id="E1"))


class AsyncHr(Hr):
    async def GetEmployee(self, request, context):  # type: ignore[override]
        return super().GetEmployee(request, context)


class Claims(reimbursement_pb2_grpc.ReimbursementServiceServicer):
    """Files every claim as clm_9 and approves whatever claim it is asked to."""

    def SubmitClaim(self, request, context):
        return reimbursement_pb2.SubmitClaimResponse(
            claim=reimbursement_pb2.Claim(claim_id="clm_9")
        )

    def ApproveClaim(self, request, context):
        return reimbursement_pb2.ApproveClaimResponse(
            claim=reimbursement_pb2.Claim(claim_id=request.claim_id)
        )


class AsyncClaims(Claims):
    async def SubmitClaim(self, request, context):  # type: ignore[override]
        return super().SubmitClaim(request, context)

    async def ApproveClaim(self, request, context):  # type: ignore[override]
        return super().ApproveClaim(request, context)


class Mesh:
    """Services on mTLS (dev CA) with a shared registry, each with its own Tracing."""

    def __init__(self, flavour: str, ratio: float = 1.0) -> None:
        self.flavour = flavour
        self.ratio = ratio
        self.spans = InMemorySpanExporter()
        self.registry = StaticRegistry()
        self.cache = EndpointCache(self.registry)
        self.closers: list = []

    def tracing(self, service: str) -> Tracing:
        tracing = Tracing.start(
            service,
            exporter="none",
            sampling_ratio=self.ratio,
            processors=[SimpleSpanProcessor(self.spans)],
            spiffe_id=CA.spiffe_id(service).uri,
        )
        self.closers.append(tracing.shutdown)
        return tracing

    def serve(
        self, service: str, servicer, descriptor, register, access: AccessPolicy, usage=None
    ) -> None:
        aio = self.flavour == "aio"
        server = (AioServerThread if aio else Server)(
            identity_source=dev_ca_identity(CA, service),
            authorization=(service, lambda: access),
            tracing=self.tracing(service),
            metering=usage,
        )
        server.add_service(descriptor, register, servicer)
        port = server.start("127.0.0.1:0")
        self.registry.register(instance_of(service, "127.0.0.1", port))
        self.closers.insert(0, lambda: server.stop(0))

    def serve_hr(self, servicer, usage=None) -> None:
        """hr's EmployeeService, open to every caller."""
        self.serve(
            "hr",
            servicer,
            hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
            hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
            EVERYONE,
            usage,
        )

    def connect(self, service: str, caller: str, tracing: Tracing | None):
        channel = client.connect(
            service, self.cache, identity=dev_ca_identity(CA, caller), tracing=tracing
        )
        self.closers.insert(0, channel.close)
        return channel

    def close(self) -> None:
        for close in self.closers:
            close()
        self.cache.close()


EVERYONE = AccessPolicy([Intention("*", "hr", "allow")], MethodRules({}))


@pytest.fixture(params=["sync", "aio"])
def mesh(request):
    mesh = Mesh(request.param)
    hr = AsyncHr() if request.param == "aio" else Hr()
    mesh.serve_hr(hr)
    mesh.hr = hr
    yield mesh
    mesh.close()


def by_kind(spans, kind):
    return [span for span in spans if span.kind is kind]


class TestSpans:
    def test_client_and_server_span_of_one_call(self, mesh):
        """One call: a client span in the caller and its child server span in hr, with the
        RPC conventions and the verified identities."""
        channel = mesh.connect("hr", "reimbursement", mesh.tracing("reimbursement"))
        hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
            hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5
        )
        [client_span] = by_kind(mesh.spans.get_finished_spans(), SpanKind.CLIENT)
        [server_span] = by_kind(mesh.spans.get_finished_spans(), SpanKind.SERVER)

        assert server_span.context.trace_id == client_span.context.trace_id
        assert server_span.parent.span_id == client_span.context.span_id
        assert server_span.name == client_span.name == "deptmesh.hr.v1.EmployeeService/GetEmployee"
        server = server_span.attributes
        assert server["rpc.system"] == "grpc"
        assert (server["rpc.service"], server["rpc.method"]) == (
            "deptmesh.hr.v1.EmployeeService",
            "GetEmployee",
        )
        assert server["rpc.grpc.status_code"] == 0
        assert server["network.peer.address"] == "127.0.0.1"
        assert server[attr.CALLER_SPIFFE_ID] == CA.spiffe_id("reimbursement").uri
        assert server[attr.CALLER_SERVICE] == "reimbursement"
        assert server[attr.CALLEE_SPIFFE_ID] == CA.spiffe_id("hr").uri
        assert 0 < server[attr.DEADLINE_REMAINING] <= 5
        assert server_span.resource.attributes["service.name"] == "hr"
        caller = client_span.attributes
        assert (caller["server.address"], caller[attr.CALLEE_SERVICE]) == ("hr", "hr")
        assert caller[attr.CALLER_SPIFFE_ID] == CA.spiffe_id("reimbursement").uri
        assert caller["rpc.grpc.status_code"] == 0

    def test_denied_call_has_an_event_with_the_reason(self, mesh):
        """A caller refused by authorization leaves a server span with PERMISSION_DENIED and
        a denial event naming the rule."""
        payments = finance_pb2_grpc.PaymentServiceServicer()
        mesh.serve(
            "finance",
            payments,
            finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
            finance_pb2_grpc.add_PaymentServiceServicer_to_server,
            AccessPolicy([], MethodRules({})),
        )
        channel = mesh.connect("finance", "hr", mesh.tracing("hr-client"))
        with pytest.raises(grpc.RpcError):
            finance_pb2_grpc.PaymentServiceStub(channel).Payout(
                finance_pb2.PayoutRequest(), timeout=5
            )
        [server_span] = [
            s
            for s in by_kind(mesh.spans.get_finished_spans(), SpanKind.SERVER)
            if s.resource.attributes["service.name"] == "finance"
        ]
        assert (
            server_span.attributes["rpc.grpc.status_code"]
            == grpc.StatusCode.PERMISSION_DENIED.value[0]
        )
        [event] = server_span.events
        assert event.name == attr.DENIED_EVENT
        assert "default deny" in event.attributes[attr.REASON]

    def test_baggage_and_log_lines_follow_the_call(self, mesh):
        """Baggage set by the caller reaches the handler; the handler's log line carries the
        server span's trace_id and span_id."""
        channel = mesh.connect("hr", "reimbursement", mesh.tracing("reimbursement"))
        token = otel_context.attach(baggage.set_baggage("deptmesh.claim_id", "C-42"))
        try:
            with capture_logs(processors=[add_trace_context]) as logs:
                hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                    hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5
                )
        finally:
            otel_context.detach(token)
        assert mesh.hr.baggage == [{"deptmesh.claim_id": "C-42"}]
        [server_span] = by_kind(mesh.spans.get_finished_spans(), SpanKind.SERVER)
        [line] = [entry for entry in logs if entry["event"] == "looked_up"]
        assert line["trace_id"] == format(server_span.context.trace_id, "032x")
        assert line["span_id"] == format(server_span.context.span_id, "016x")

    def test_an_asyncio_channel_call_is_traced_the_same(self, mesh):
        """Through aio_connect: a client span whose child is hr's server span, with the
        callee's identity, and the caller's baggage reaching the handler."""
        tracing = mesh.tracing("reimbursement")
        identity = dev_ca_identity(CA, "reimbursement")

        async def scenario():
            token = otel_context.attach(baggage.set_baggage("deptmesh.claim_id", "C-7"))
            try:
                async with client.aio_connect(
                    "hr", mesh.cache, identity=identity, tracing=tracing
                ) as channel:
                    await hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                        hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5
                    )
            finally:
                otel_context.detach(token)

        asyncio.run(scenario())
        [client_span] = by_kind(mesh.spans.get_finished_spans(), SpanKind.CLIENT)
        [server_span] = by_kind(mesh.spans.get_finished_spans(), SpanKind.SERVER)
        assert server_span.context.trace_id == client_span.context.trace_id
        assert server_span.parent.span_id == client_span.context.span_id
        caller = client_span.attributes
        assert (caller["server.address"], caller[attr.CALLEE_SERVICE]) == ("hr", "hr")
        assert caller["rpc.grpc.status_code"] == 0
        assert mesh.hr.baggage == [{"deptmesh.claim_id": "C-7"}]


class TestBusinessKeys:
    def test_server_spans_carry_the_keys_their_contract_declares(self, mesh):
        """reimbursement's server spans carry deptmesh.key.claim, from SubmitClaim's
        response (claim.claim_id) and ApproveClaim's request, with no code in the
        handlers; the caller's client spans carry none."""
        mesh.serve(
            "reimbursement",
            AsyncClaims() if mesh.flavour == "aio" else Claims(),
            reimbursement_pb2.DESCRIPTOR.services_by_name["ReimbursementService"],
            reimbursement_pb2_grpc.add_ReimbursementServiceServicer_to_server,
            AccessPolicy([Intention("*", "reimbursement", "allow")], MethodRules({})),
        )
        channel = mesh.connect("reimbursement", "web", mesh.tracing("web"))
        claims = reimbursement_pb2_grpc.ReimbursementServiceStub(channel)
        claims.SubmitClaim(reimbursement_pb2.SubmitClaimRequest(employee_id="E1"), timeout=5)
        claims.ApproveClaim(reimbursement_pb2.ApproveClaimRequest(claim_id="clm_4"), timeout=5)

        spans = mesh.spans.get_finished_spans()
        claim = key_attribute("claim")
        assert {
            span.attributes["rpc.method"]: span.attributes[claim]
            for span in by_kind(spans, SpanKind.SERVER)
        } == {"SubmitClaim": "clm_9", "ApproveClaim": "clm_4"}
        assert [span for span in by_kind(spans, SpanKind.CLIENT) if claim in span.attributes] == []


def test_unsampled_traces_record_nothing_and_calls_still_work():
    """At a sampling ratio of 0 no span is recorded, and the call is unaffected."""
    mesh = Mesh("sync", ratio=0.0)
    try:
        mesh.serve_hr(Hr())
        channel = mesh.connect("hr", "reimbursement", mesh.tracing("reimbursement"))
        reply = hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
            hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5
        )
        assert reply.employee.employee_id == "E1"
        assert mesh.spans.get_finished_spans() == ()
    finally:
        mesh.close()


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_an_unsampled_call_still_has_one_trace_id_and_span_id_everywhere(flavour):
    """Not recorded, a call still has ids: the caller's trace, the handler's log line and
    the access event agree on them."""
    access = io.StringIO()
    mesh = Mesh(flavour, ratio=0.0)
    try:
        usage = MeteringStage("hr", access_log=AccessLog(access))
        mesh.serve_hr(AsyncHr() if flavour == "aio" else Hr(), usage)
        caller = mesh.tracing("reimbursement")
        channel = mesh.connect("hr", "reimbursement", caller)
        with capture_logs(processors=[add_trace_context]) as logs, caller.span("submit") as span:
            hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5
            )
        usage.drain()
        [line] = [entry for entry in logs if entry["event"] == "looked_up"]
        [event] = [json.loads(text) for text in access.getvalue().splitlines()]
        assert line["trace_id"] == event["trace_id"]
        assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
        assert line["span_id"] == event["span_id"] != ""
        assert mesh.spans.get_finished_spans() == ()
    finally:
        mesh.close()


@pytest.mark.parametrize(("caller_ratio", "recorded"), [(1.0, True), (0.0, False)])
def test_the_callers_sampling_decision_is_followed(caller_ratio, recorded):
    """Parent-based: hr, sampling no new trace of its own, records a call exactly when the
    caller's trace is recorded."""
    mesh = Mesh("sync", ratio=0.0)
    try:
        mesh.serve_hr(Hr())
        mesh.ratio = caller_ratio
        channel = mesh.connect("hr", "reimbursement", mesh.tracing("reimbursement"))
        hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
            hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5
        )
        services = {
            span.resource.attributes["service.name"] for span in mesh.spans.get_finished_spans()
        }
        assert services == ({"hr", "reimbursement"} if recorded else set())
    finally:
        mesh.close()
