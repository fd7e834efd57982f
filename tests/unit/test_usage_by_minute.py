"""Usage per (caller, method, status class) and minute, as the drain counts it for the ledger."""

from __future__ import annotations

import contextvars

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2
from deptmesh.metering.v1 import metering_pb2
from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain.core import Call, QuotaNote, RpcMethod
from deptmesh.sidecar.metering.minutes import (
    REPORT_USAGE_PATH,
    MinuteUsage,
    UsageByMinute,
    status_class,
)
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.stage import method_cost

GET = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
QUERY_USAGE = "/deptmesh.metering.v1.UsageLedgerService/QueryUsage"  # quota_cost 5
MINUTE = 1_790_000_040  # a minute's start: a multiple of 60
ADMITTED = QuotaNote("reimbursement", "standard", throttled=False, shadow_throttled=False)
THROTTLED = QuotaNote("reimbursement", "standard", throttled=True, shadow_throttled=False)
SHADOW = QuotaNote("reimbursement", "standard", throttled=False, shadow_throttled=True)


def entry(
    ended, caller="reimbursement", path=GET, code=grpc.StatusCode.OK, ns=1500, req=10, rsp=20
):
    return (ended, caller, path, code, ns, req, rsp, None)


def counted(batch, cost_of=lambda path: 1, service="hr") -> list[MinuteUsage]:
    usage = UsageByMinute(service, cost_of=cost_of)
    usage.count((ended, ADMITTED) for ended in batch)
    return usage.take()


class TestStatusClass:
    def test_ok_is_ok(self):
        """A call that ended OK is OK, admitted by its quota or shadow-throttled alike."""
        for note in (None, ADMITTED, SHADOW):
            assert status_class(grpc.StatusCode.OK, note) == metering_pb2.STATUS_CLASS_OK

    @pytest.mark.parametrize(
        "code",
        [
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.ALREADY_EXISTS,
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.CANCELLED,
        ],
    )
    def test_the_callers_faults_are_client_errors(self, code):
        """The codes the contract calls the caller's fault are CLIENT_ERROR."""
        assert status_class(code, ADMITTED) == metering_pb2.STATUS_CLASS_CLIENT_ERROR

    @pytest.mark.parametrize(
        "code",
        [
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.UNKNOWN,
            grpc.StatusCode.UNIMPLEMENTED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,  # the handler's own, not the quota's
        ],
    )
    def test_every_other_code_is_a_server_error(self, code):
        """Every other code, a handler's own RESOURCE_EXHAUSTED included, is SERVER_ERROR."""
        assert status_class(code, ADMITTED) == metering_pb2.STATUS_CLASS_SERVER_ERROR

    def test_a_call_the_quota_refused_is_throttled(self):
        """A call the quota stage's note says it throttled is THROTTLED."""
        assert (
            status_class(grpc.StatusCode.RESOURCE_EXHAUSTED, THROTTLED)
            == metering_pb2.STATUS_CLASS_THROTTLED
        )

    @pytest.mark.parametrize(
        "code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED]
    )
    def test_refusals_of_authorization_are_denied(self, code):
        """UNAUTHENTICATED and PERMISSION_DENIED are DENIED."""
        assert status_class(code, None) == metering_pb2.STATUS_CLASS_DENIED


class TestUsageByMinute:
    def test_calls_count_in_the_minute_they_ended(self):
        """A call that ended at :59.999 counts in that minute; one at :00.000, in the next."""
        usage = counted([entry(MINUTE + 59.999), entry(MINUTE + 60.0), entry(MINUTE + 0.0)])
        assert [(u.minute, u.calls) for u in usage] == [(MINUTE, 2), (MINUTE + 60, 1)]

    def test_one_row_per_caller_method_and_status_class(self):
        """Calls are summed per (minute, caller, method, status class); latency in whole µs."""
        usage = counted(
            [
                entry(MINUTE + 1, ns=1_500_000, req=10, rsp=100),
                entry(MINUTE + 2, ns=2_500_999, req=11, rsp=101),
                entry(MINUTE + 3, code=grpc.StatusCode.NOT_FOUND),
                entry(MINUTE + 4, caller="finance"),
            ]
        )
        assert usage == [
            MinuteUsage(MINUTE, "finance", GET, metering_pb2.STATUS_CLASS_OK, 1, 1, 10, 20, 1),
            MinuteUsage(
                MINUTE, "reimbursement", GET, metering_pb2.STATUS_CLASS_OK, 2, 2, 21, 201, 4000
            ),
            MinuteUsage(
                MINUTE,
                "reimbursement",
                GET,
                metering_pb2.STATUS_CLASS_CLIENT_ERROR,
                1,
                1,
                10,
                20,
                1,
            ),
        ]

    def test_throttled_calls_are_kept_apart_from_server_errors(self):
        """A throttled call and a handler's RESOURCE_EXHAUSTED land in different rows."""
        usage = UsageByMinute("hr", cost_of=lambda path: 1)
        exhausted = entry(MINUTE + 1, code=grpc.StatusCode.RESOURCE_EXHAUSTED)
        usage.count([(exhausted, THROTTLED), (exhausted, ADMITTED)])
        assert sorted(u.status_class for u in usage.take()) == [
            metering_pb2.STATUS_CLASS_SERVER_ERROR,
            metering_pb2.STATUS_CLASS_THROTTLED,
        ]

    def test_cost_units_are_calls_times_the_methods_quota_cost(self):
        """Cost units are calls times the method's declared quota_cost (QueryUsage: 5)."""
        usage = counted(
            [entry(MINUTE + 1, path=QUERY_USAGE)] * 3 + [entry(MINUTE + 1)], cost_of=method_cost
        )
        assert {u.method: (u.calls, u.cost_units) for u in usage} == {
            GET: (1, 1),
            QUERY_USAGE: (3, 15),
        }

    def test_the_cost_is_resolved_once_per_method(self):
        """A method's cost is asked for once, however many calls and takes there are."""
        asked: list[str] = []

        def cost_of(path: str) -> int:
            asked.append(path)
            return 2

        usage = UsageByMinute("hr", cost_of=cost_of)
        for second in range(3):
            usage.count([(entry(MINUTE + second), None)] * 100)
            assert usage.take()[0].cost_units == 200
        assert asked == [GET]

    def test_take_returns_each_call_once(self):
        """What was taken is not taken again; calls counted later are."""
        usage = UsageByMinute("hr", cost_of=lambda path: 1)
        usage.count([(entry(MINUTE + 1), None)])
        assert [u.calls for u in usage.take()] == [1]
        assert usage.take() == []
        usage.count([(entry(MINUTE + 2), None)] * 2)
        assert [u.calls for u in usage.take()] == [2]

    def test_calls_without_a_caller_are_not_counted(self):
        """A call with no verified caller is charged to nobody."""
        assert counted([entry(MINUTE + 1, caller="")]) == []

    def test_the_ledger_leaves_out_its_own_reports(self):
        """The ledger's reports to itself are not counted; other departments' reports are."""
        usage = counted(
            [
                entry(MINUTE + 1, caller="metering", path=REPORT_USAGE_PATH),
                entry(MINUTE + 1, caller="hr", path=REPORT_USAGE_PATH),
                entry(MINUTE + 1, caller="metering", path=QUERY_USAGE),
            ],
            service="metering",
        )
        assert [(u.caller, u.method) for u in usage] == [
            ("hr", REPORT_USAGE_PATH),
            ("metering", QUERY_USAGE),
        ]


class TestMeteringStageByMinute:
    def test_take_minutes_includes_every_call_that_ended(self):
        """take_minutes counts the calls that ended since the last drain, with their bytes."""
        stage = MeteringStage("hr", by_minute=UsageByMinute("hr", cost_of=method_cost))
        method = RpcMethod(GET, "deptmesh.hr.v1.EmployeeService", "GetEmployee", False, False)
        request = hr_pb2.GetEmployeeRequest(employee_id="E1001")

        def call(code: grpc.StatusCode) -> None:
            CURRENT_CALLER.set(Caller("reimbursement", "spiffe://td/svc/reimbursement", "r"))
            ongoing = Call(method, None, request)  # type: ignore[arg-type]
            stage.start(ongoing)
            ongoing.response = hr_pb2.GetEmployeeResponse()
            ongoing.code = code
            stage.finish(ongoing)

        for code in (grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED):
            contextvars.copy_context().run(call, code)

        usage = {u.status_class: u for u in stage.take_minutes()}
        assert usage[metering_pb2.STATUS_CLASS_OK].calls == 2
        assert usage[metering_pb2.STATUS_CLASS_OK].request_bytes == 2 * request.ByteSize()
        assert usage[metering_pb2.STATUS_CLASS_DENIED].calls == 1
        assert stage.take_minutes() == []

    def test_without_usage_by_minute_there_is_nothing_to_take(self):
        """A stage built without UsageByMinute counts no minutes."""
        assert MeteringStage("hr").take_minutes() == []

    def test_usage_by_minute_must_be_the_same_services(self):
        """A UsageByMinute of another service is refused at construction."""
        with pytest.raises(ValueError, match="'finance'"):
            MeteringStage("hr", by_minute=UsageByMinute("finance", cost_of=method_cost))
