"""Business keys: found in a method's messages as its contract declares, recorded on spans."""

from __future__ import annotations

import contextvars

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from deptmesh.common.v1 import business_key_pb2
from deptmesh.reimbursement.v1 import reimbursement_pb2 as pb
from deptmesh.sidecar.chain.core import Call, RpcMethod
from deptmesh.sidecar.tracing import Tracing, tag_current_call
from deptmesh.sidecar.tracing.key_fields import NO_KEYS, KeyField, method_keys
from deptmesh.sidecar.tracing.stage import TracingStage
from deptmesh.sidecar.tracing.tags import key_attribute

CLAIM = key_attribute("claim")
REIMBURSEMENT = "deptmesh.reimbursement.v1.ReimbursementService"
PACKAGE = "deptmesh.tests.keys"


def _add_test_contract() -> None:
    """A contract of odd declarations, in the default pool as generated stubs are:

    message Node {
      string id = 1 [(business_key) = "node"];
      Node child = 2;                       // itself: not looked into again
      repeated Node children = 3;           // repeated: not looked into
      int64 number = 4 [(business_key) = "number"];
      repeated string ids = 5 [(business_key) = "ids"];      // ignored: repeated
      bool flag = 6 [(business_key) = "flag"];               // ignored: not a key type
      string spaced = 7 [(business_key) = "bad name"];       // ignored: the name
    }
    service Keys { rpc Walk(Node) returns (Node); }
    """
    pool = descriptor_pool.Default()
    name = "tests/unit/business_keys.proto"
    try:
        pool.FindFileByName(name)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto(
        name=name,
        package=PACKAGE,
        syntax="proto3",
        dependency=[business_key_pb2.DESCRIPTOR.name],
    )
    node = file.message_type.add(name="Node")
    scalar = descriptor_pb2.FieldDescriptorProto
    optional, repeated = scalar.LABEL_OPTIONAL, scalar.LABEL_REPEATED
    fields = [
        ("id", 1, scalar.TYPE_STRING, optional, "node"),
        ("child", 2, scalar.TYPE_MESSAGE, optional, ""),
        ("children", 3, scalar.TYPE_MESSAGE, repeated, ""),
        ("number", 4, scalar.TYPE_INT64, optional, "number"),
        ("ids", 5, scalar.TYPE_STRING, repeated, "ids"),
        ("flag", 6, scalar.TYPE_BOOL, optional, "flag"),
        ("spaced", 7, scalar.TYPE_STRING, optional, "bad name"),
    ]
    for field_name, number, kind, label, key in fields:
        field = node.field.add(name=field_name, number=number, type=kind, label=label)
        if kind == scalar.TYPE_MESSAGE:
            field.type_name = f".{PACKAGE}.Node"
        if key:
            field.options.Extensions[business_key_pb2.business_key] = key
    service = file.service.add(name="Keys")
    service.method.add(name="Walk", input_type=f".{PACKAGE}.Node", output_type=f".{PACKAGE}.Node")
    pool.AddSerializedFile(file.SerializeToString())


_add_test_contract()
Node = message_factory.GetMessageClass(
    descriptor_pool.Default().FindMessageTypeByName(f"{PACKAGE}.Node")
)


class FakeContext:
    """What the tracing stage asks of a call's grpc context."""

    def __init__(self, metadata=()):
        self.metadata = metadata

    def invocation_metadata(self):
        return self.metadata

    def peer(self):
        return "ipv4:127.0.0.1:5555"

    def time_remaining(self):
        return None


def rpc(service, name):
    return RpcMethod(f"/{service}/{name}", service, name, False, False)


@pytest.fixture
def exported():
    return InMemorySpanExporter()


def tracing_at(ratio, exported):
    return Tracing.start(
        "reimbursement",
        exporter="none",
        sampling_ratio=ratio,
        processors=[SimpleSpanProcessor(exported)],
    )


def handle(stage, method, request, response, code=grpc.StatusCode.OK):
    """One call through the stage, in a context of its own (the stage makes its span
    current and leaves it so, as the chain does on its worker threads)."""

    def run():
        call = Call(method, FakeContext(), request)
        stage.start(call)
        call.response = response
        call.code = code
        stage.finish(call)
        return call

    return contextvars.copy_context().run(run)


class TestMethodKeys:
    def test_keys_are_found_in_the_request_and_in_the_responses_nested_message(self):
        """ApproveClaim's key is its request's claim_id and its response's claim.claim_id;
        SubmitClaim's is in its response only."""
        approve = method_keys(REIMBURSEMENT, "ApproveClaim")
        assert approve.request == (KeyField(CLAIM, (), "claim_id"),)
        assert approve.response == (KeyField(CLAIM, ("claim",), "claim_id"),)
        submit = method_keys(REIMBURSEMENT, "SubmitClaim")
        assert (submit.request, submit.response) == ((), approve.response)

    def test_a_method_without_keys_or_descriptor_has_none(self):
        """A method whose messages declare no key, or that no loaded contract has, has
        NO_KEYS."""
        assert method_keys("deptmesh.hr.v1.EmployeeService", "GetEmployee") is NO_KEYS
        assert method_keys("nowhere.Service", "Method") is NO_KEYS

    def test_repeated_fields_are_not_looked_into(self):
        """ListClaims' response holds claims in a repeated field: no key is read there."""
        assert method_keys(REIMBURSEMENT, "ListClaims") is NO_KEYS

    def test_a_message_is_not_looked_into_from_inside_itself_and_odd_keys_are_logged(self):
        """Node.child (a Node inside a Node) is not followed; a repeated key field, a bool
        and a name with a space are each logged as ignored, and skipped."""
        with capture_logs() as logs:
            keys = method_keys(PACKAGE + ".Keys", "Walk")
        assert keys.request == keys.response
        assert keys.request == (
            KeyField(key_attribute("node"), (), "id"),
            KeyField(key_attribute("number"), (), "number"),
        )
        ignored = [log["field"] for log in logs if log["event"] == "business_key_ignored"]
        assert sorted(ignored) == sorted(
            2 * [f"{PACKAGE}.Node.ids", f"{PACKAGE}.Node.flag", f"{PACKAGE}.Node.spaced"]
        )

    def test_values_are_read_where_set_and_skipped_where_not(self):
        """A key is read through set message fields (here, as if Node.child were followed);
        an unset path, an empty string and a zero are no value; an integer is read as its
        decimal string."""
        field = KeyField(key_attribute("node"), ("child",), "id")
        assert field.value_in(Node(child=Node(id="n2"))) == "n2"
        assert field.value_in(Node(id="n1")) == ""
        assert field.value_in(Node(child=Node())) == ""
        number = KeyField(key_attribute("number"), (), "number")
        assert number.value_in(Node(number=42)) == "42"
        assert number.value_in(Node()) == ""


class TestTracingStage:
    def test_a_recorded_call_carries_the_keys_of_its_request_and_response(self, exported):
        """ApproveClaim's server span has deptmesh.key.claim from its request; SubmitClaim's
        from the claim in its response."""
        stage = TracingStage(tracing_at(1.0, exported), "spiffe://corp/svc/reimbursement")
        handle(
            stage,
            rpc(REIMBURSEMENT, "ApproveClaim"),
            pb.ApproveClaimRequest(claim_id="clm_1", approver_id="E1"),
            pb.ApproveClaimResponse(claim=pb.Claim(claim_id="clm_1")),
        )
        handle(
            stage,
            rpc(REIMBURSEMENT, "SubmitClaim"),
            pb.SubmitClaimRequest(employee_id="E2"),
            pb.SubmitClaimResponse(claim=pb.Claim(claim_id="clm_2")),
        )
        approve, submit = exported.get_finished_spans()
        assert (approve.attributes or {})[CLAIM] == "clm_1"
        assert (submit.attributes or {})[CLAIM] == "clm_2"

    def test_a_refused_call_carries_its_requests_keys(self, exported):
        """A call the chain refused has no response, and its span still names the claim."""
        stage = TracingStage(tracing_at(1.0, exported), "spiffe://corp/svc/reimbursement")
        handle(
            stage,
            rpc(REIMBURSEMENT, "RejectClaim"),
            pb.RejectClaimRequest(claim_id="clm_3"),
            None,
            grpc.StatusCode.PERMISSION_DENIED,
        )
        [span] = exported.get_finished_spans()
        assert (span.attributes or {})[CLAIM] == "clm_3"

    def test_different_values_of_one_key_are_all_kept(self, exported):
        """A request and a response naming two different values of one key leave both."""
        stage = TracingStage(tracing_at(1.0, exported), "spiffe://corp/svc/keys")
        handle(stage, rpc(PACKAGE + ".Keys", "Walk"), Node(id="a"), Node(id="b"))
        [span] = exported.get_finished_spans()
        assert (span.attributes or {})[key_attribute("node")] == ("a", "b")

    def test_an_unsampled_call_reads_no_key_and_no_descriptor(self, exported):
        """At ratio 0 nothing is recorded, and the method's descriptors are not even read:
        the odd declarations of Walk, logged when its keys are first read, are not."""
        stage = TracingStage(tracing_at(0.0, exported), "spiffe://corp/svc/keys")
        with capture_logs() as logs:
            call = handle(stage, rpc(PACKAGE + ".Keys", "Walk"), Node(id="a"), Node(id="b"))
        assert exported.get_finished_spans() == ()
        assert call.span is not None
        assert not call.span.is_recording()
        assert logs == []

    def test_a_methods_keys_are_read_once(self, exported):
        """The descriptors of a method are read at its first recorded call, not at every
        call: its odd declarations are logged once."""
        stage = TracingStage(tracing_at(1.0, exported), "spiffe://corp/svc/keys")
        with capture_logs() as logs:
            for _ in range(3):
                handle(stage, rpc(PACKAGE + ".Keys", "Walk"), Node(id="a"), Node(id="a"))
        ignored = [log for log in logs if log["event"] == "business_key_ignored"]
        assert len(ignored) == 3 * 2  # three odd fields, in the request and the response
        assert len(exported.get_finished_spans()) == 3


class TestTagCurrentCall:
    def test_it_records_the_key_on_the_current_span(self, exported):
        """tag_current_call(name, value) sets deptmesh.key.<name>; a second value is kept
        beside the first, a repeated one once, an empty one not at all."""
        tracing = tracing_at(1.0, exported)
        with tracing.span("handler"):
            tag_current_call("cost_center", "CC-ENG")
            tag_current_call("cost_center", "CC-OPS")
            tag_current_call("cost_center", "CC-ENG")
            tag_current_call("employee", "")
        [span] = exported.get_finished_spans()
        assert dict(span.attributes or {}) == {key_attribute("cost_center"): ("CC-ENG", "CC-OPS")}

    def test_an_unrecorded_call_records_nothing(self, exported):
        """Under an unsampled span the call does nothing (and costs no attribute)."""
        with tracing_at(0.0, exported).span("handler") as span:
            tag_current_call("claim", "clm_1")
        assert not span.is_recording()
        assert exported.get_finished_spans() == ()

    @pytest.mark.parametrize("name", ["", "bad name", "a=b", "naïve"])
    def test_a_malformed_name_is_refused(self, name):
        """A key name other than letters, digits, _ . - is a ValueError, sampled or not."""
        with pytest.raises(ValueError, match="business key's name"):
            tag_current_call(name, "1")
