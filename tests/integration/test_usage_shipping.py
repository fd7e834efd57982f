"""The usage shipper against a real grpc server implementing UsageLedgerService: delivered,
redelivered with the same record ids, spooled while the ledger is down, and a killed
process's spool delivered by the next one."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.metering.v1 import metering_pb2
from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain.core import Call, RpcMethod
from deptmesh.sidecar.channel import dial
from deptmesh.sidecar.metering import MeteringStage, UsageByMinute, UsageShipper, UsageSpool
from deptmesh.sidecar.quotas.stage import method_cost
from deptmesh.sidecar.tracing import Tracing
from tests.integration.fake_ledger import LedgerServer

GET = RpcMethod(
    "/deptmesh.hr.v1.EmployeeService/GetEmployee",
    "deptmesh.hr.v1.EmployeeService",
    "GetEmployee",
    request_streaming=False,
    response_streaming=False,
)
REIMBURSEMENT = Caller("reimbursement", "spiffe://td/ns/default/dc/dc1/svc/reimbursement", "r")
NEVER = 3600.0  # a flush interval the test never waits for: it flushes and sends itself


@pytest.fixture
def ledger_server() -> Iterator[LedgerServer]:
    server = LedgerServer()
    yield server
    server.stop()


@pytest.fixture
def channel(ledger_server):
    channel = dial(ledger_server.address, default_timeout=5.0)
    yield channel
    channel.close()


def metering() -> MeteringStage:
    return MeteringStage("hr", by_minute=UsageByMinute("hr", cost_of=method_cost))


def serve_calls(stage: MeteringStage, count: int) -> None:
    """`count` OK calls of reimbursement's through the metering stage, as the chain runs them."""
    request = hr_pb2.GetEmployeeRequest(employee_id="E1001")

    def call() -> None:
        CURRENT_CALLER.set(REIMBURSEMENT)
        ongoing = Call(GET, None, request)
        stage.start(ongoing)
        ongoing.response = hr_pb2.GetEmployeeResponse()
        stage.finish(ongoing)

    for _ in range(count):
        contextvars.copy_context().run(call)


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(0.02)


@pytest.fixture
def shipping(tmp_path, channel):
    """A metering stage and a shipper that flushes and sends only when the test says."""
    stage = metering()
    spool = UsageSpool(tmp_path / "spool.sqlite")
    shipper = UsageShipper(stage, channel, spool, run_id="hr-1.100.ab", flush_seconds=NEVER)
    yield stage, spool, shipper
    shipper.stop()
    spool.close()


class TestUsageShipper:
    def test_usage_is_delivered_and_then_deleted_from_the_spool(self, shipping, ledger_server):
        """Flushed usage reaches the ledger as records of this callee, then leaves the spool."""
        stage, spool, shipper = shipping
        serve_calls(stage, 7)
        assert shipper.flush() == 1
        assert spool.waiting_records() == 1

        assert shipper.send_spooled()

        (record,) = ledger_server.ledger.records.values()
        assert record.record_id == "hr-1.100.ab/1/0"
        assert (record.caller, record.callee, record.method) == ("reimbursement", "hr", GET.path)
        assert record.status_class == metering_pb2.STATUS_CLASS_OK
        assert (record.calls, record.cost_units) == (7, 7)
        assert record.minute.seconds % 60 == 0
        assert record.minute.nanos == 0
        assert spool.waiting_records() == 0

    def test_a_failed_batch_is_sent_again_with_the_same_record_ids(self, shipping, ledger_server):
        """After a transient refusal the same batch is sent again, the outage logged once, and
        the calls counted once. (The channel itself retries UNAVAILABLE: these codes reach
        the shipper.)"""
        stage, _, shipper = shipping
        ledger = ledger_server.ledger
        ledger.refusals = [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED]
        serve_calls(stage, 3)
        shipper.flush()
        with capture_logs() as logs:
            assert not shipper.send_spooled()
            assert not shipper.send_spooled()
            assert shipper.send_spooled()

        assert ledger.deliveries[0] == ledger.deliveries[1] == ledger.deliveries[2]
        assert ledger.calls() == 3
        events = [log["event"] for log in logs]
        assert events == ["ledger_unreachable", "ledger_reachable_again"]
        assert logs[0]["code"] == "RESOURCE_EXHAUSTED"

    def test_a_batch_whose_answer_was_lost_is_counted_once(self, shipping, ledger_server):
        """A batch the ledger recorded but whose answer never came back is redelivered and
        counted once: at least once from the spool, exactly once in the ledger."""
        stage, _, shipper = shipping
        ledger = ledger_server.ledger
        ledger.lose_answers = 1
        serve_calls(stage, 4)
        shipper.flush()
        assert not shipper.send_spooled()
        assert shipper.send_spooled()
        assert len(ledger.deliveries) == 2
        assert ledger.calls() == 4

    @pytest.mark.parametrize(
        "code",
        [
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.ALREADY_EXISTS,
        ],
    )
    def test_a_refused_batch_is_set_aside_and_the_next_one_goes(
        self, shipping, ledger_server, code
    ):
        """A batch refused for good is logged with the reason and set aside, not retried."""
        stage, spool, shipper = shipping
        ledger = ledger_server.ledger
        ledger.refusals = [code]
        serve_calls(stage, 1)
        shipper.flush()
        serve_calls(stage, 2)
        shipper.flush()
        with capture_logs() as logs:
            assert shipper.send_spooled()

        assert ledger.calls() == 2
        (refused,) = [log for log in logs if log["event"] == "usage_batch_refused"]
        assert refused["code"] == code.name
        assert refused["reason"] == f"refused with {code.name} by the test"
        (aside,) = spool.set_aside_batches()
        assert aside.reason == f"{code.name}: refused with {code.name} by the test"
        assert aside.request.records[0].calls == 1
        assert spool.waiting_records() == 0

    def test_reports_are_sent_in_an_unsampled_trace(self, tmp_path, ledger_server):
        """Through a traced channel a report carries a traceparent whose sampled flag is off,
        and no span is recorded for it."""
        exporter = InMemorySpanExporter()
        tracing = Tracing.start("hr", exporter="none", processors=[SimpleSpanProcessor(exporter)])
        channel = dial(ledger_server.address, tracing=tracing)
        stage = metering()
        spool = UsageSpool(tmp_path / "spool.sqlite")
        shipper = UsageShipper(stage, channel, spool, run_id="hr-t", flush_seconds=NEVER)
        serve_calls(stage, 1)
        shipper.stop()
        channel.close()
        tracing.shutdown()

        (traceparent,) = ledger_server.ledger.traceparents
        assert traceparent is not None
        assert traceparent.endswith("-00")
        assert exporter.get_finished_spans() == ()

    def test_stop_flushes_and_sends_what_is_left(self, tmp_path, channel, ledger_server):
        """stop() ships the calls counted since the last flush without waiting for the next."""
        stage = metering()
        spool = UsageSpool(tmp_path / "spool.sqlite")
        shipper = UsageShipper(stage, channel, spool, run_id="hr-2", flush_seconds=NEVER)
        serve_calls(stage, 5)
        shipper.stop()
        assert ledger_server.ledger.calls() == 5
        assert spool.waiting_records() == 0

    def test_what_stop_cannot_send_stays_for_the_next_process(self, tmp_path, ledger_server):
        """With the ledger down, stop() leaves the usage in the spool, and the next shipper
        with that spool delivers it."""
        ledger_server.stop()
        stage = metering()
        spool = UsageSpool(tmp_path / "spool.sqlite")
        channel = dial(ledger_server.address)
        shipper = UsageShipper(
            stage, channel, spool, run_id="hr-3", flush_seconds=NEVER, final_send_seconds=1.0
        )
        serve_calls(stage, 6)
        with capture_logs() as logs:
            shipper.stop()
        assert "usage_left_in_spool" in [log["event"] for log in logs]
        spool.close()
        channel.close()

        ledger_server.start()
        channel = dial(ledger_server.address)
        spool = UsageSpool(tmp_path / "spool.sqlite")
        shipper = UsageShipper(metering(), channel, spool, run_id="hr-4", flush_seconds=NEVER)
        assert shipper.send_spooled()
        assert ledger_server.ledger.calls() == 6
        shipper.stop()
        spool.close()
        channel.close()

    def test_spools_while_the_ledger_is_down_and_delivers_everything_once(
        self, tmp_path, channel, ledger_server
    ):
        """While the ledger is down the shipper keeps spooling; once it is back every call is
        counted exactly once, and the outage is logged once."""
        stage = metering()
        spool = UsageSpool(tmp_path / "spool.sqlite")
        ledger_server.stop()
        with capture_logs() as logs:
            shipper = UsageShipper(
                stage, channel, spool, run_id="hr-5", flush_seconds=0.1, max_backoff_seconds=0.3
            )
            made = 0
            for _ in range(5):  # several flushes' worth, each spooled while the ledger is down
                serve_calls(stage, 10)
                made += 10
                wait_for(lambda made=made: spooled_calls_of(spool) == made, 10, "usage spooled")
            ledger_server.start()
            wait_for(lambda: ledger_server.ledger.calls() == made, 60, "all usage delivered")
            shipper.stop()
        spool.close()

        assert spool_is_empty(tmp_path / "spool.sqlite")
        delivered = [rid for ids in ledger_server.ledger.deliveries for rid in ids]
        assert sorted(set(delivered)) == sorted(ledger_server.ledger.records)
        events = [log["event"] for log in logs]
        assert events.count("ledger_unreachable") == 1
        assert events.count("ledger_reachable_again") == 1


def spooled_calls_of(spool: UsageSpool) -> int:
    return sum(r.calls for batch in spool.waiting() for r in batch.request.records)


def spool_is_empty(path: Path) -> bool:
    spool = UsageSpool(path)
    try:
        return spool.waiting_records() == 0
    finally:
        spool.close()


class Child:
    """tests/integration/usage_shipping_child.py as a process: a server shipping usage."""

    def __init__(self, ledger: str, spool: Path, flush_seconds: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.usage_shipping_child",
                ledger,
                str(spool),
                str(flush_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        assert port.isdigit(), "the child did not start"
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = hr_pb2_grpc.EmployeeServiceStub(self.channel)

    def call(self, count: int) -> None:
        for _ in range(count):
            self.stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=10)

    def kill(self) -> None:
        """SIGKILL: no drain, no final flush."""
        self.channel.close()
        self.process.kill()
        self.process.communicate(timeout=30)

    def stop(self) -> None:
        """As SIGTERM would: the shipper's last flush and send, then exit."""
        self.channel.close()
        self.process.communicate(timeout=60)
        assert self.process.returncode == 0


def spooled_calls(path: Path) -> int:
    spool = UsageSpool(path)
    try:
        return spooled_calls_of(spool)
    finally:
        spool.close()


class TestKilledProcess:
    def test_a_killed_process_loses_at_most_its_unflushed_calls_and_the_next_sends_its_spool(
        self, tmp_path, ledger_server
    ):
        """SIGKILL loses only the calls since the last flush; what was spooled is delivered by
        the next process with the same spool, each call once."""
        spool = tmp_path / "hr.usage-spool.sqlite"
        ledger = ledger_server.ledger
        ledger_server.stop()  # down: everything stays in the spool
        child = Child(ledger_server.address, spool, flush_seconds=0.2)
        child.call(30)
        wait_for(lambda: spooled_calls(spool) == 30, 20, "the first calls spooled")
        child.call(12)  # counted, not flushed yet (most likely): lost with the process
        child.kill()

        ledger_server.start()
        again = Child(ledger_server.address, spool, flush_seconds=0.2)
        wait_for(lambda: spooled_calls(spool) == 0, 60, "the spool delivered")
        again.stop()

        assert 30 <= ledger.calls() <= 42
        delivered = [rid for ids in ledger.deliveries for rid in ids]
        assert set(delivered) == set(ledger.records)  # nothing counted twice: ids are unique
        assert len({rid.rsplit("/", 2)[0] for rid in ledger.records}) == 1  # from the first run

    def test_the_unflushed_window_is_one_flush_interval_of_calls(self, tmp_path, ledger_server):
        """Calls made up to a kill are all delivered except those of the last flush interval."""
        flush_seconds = 0.5
        spool = tmp_path / "hr.usage-spool.sqlite"
        ledger = ledger_server.ledger
        child = Child(ledger_server.address, spool, flush_seconds=flush_seconds)
        ended: list[float] = []
        stop_at = time.monotonic() + 2.0
        while time.monotonic() < stop_at:
            child.call(1)
            ended.append(time.monotonic())
        killed_at = time.monotonic()
        child.kill()
        again = Child(ledger_server.address, spool, flush_seconds=flush_seconds)
        again.stop()  # sends whatever the killed one spooled

        lost = len(ended) - ledger.calls()
        window = flush_seconds + 1.0  # the flush interval, and slack for a loaded machine
        in_window = sum(1 for at in ended if at > killed_at - window)
        assert 0 <= lost <= in_window
