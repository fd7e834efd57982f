"""What the usage ledger and the sidecar's metering cost, in one run.

- ingest_records_per_s: usage records the ledger's store records per second,
  in batches of 5,000 (the largest ReportUsage takes), into a SQLite file that
  fills up to `--records`; minutes advance as real reports do. The same through
  the RPC (validation and protobuf included, in-process server, no TLS) is
  printed beside it.
- statement_ms_1M_records: GetStatement for a department whose month holds
  `--records` records (default one million), priced with a tiered card.
- per_call_ns: the sidecar's metering stage, start + finish of one call,
  in-process (caller bound, the per-call path only: the median of batches);
  what the drain thread then spends per call, off the path, is printed beside.

    python -m bench.metering [--records N] [--rpc-records N] [--calls N]

The last line is for scripts:
`metering ingest_records_per_s=<n> statement_ms_1M_records=<n> per_call_ns=<n>`
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from deptmesh.hr.v1 import hr_pb2
from deptmesh.metering.v1 import metering_pb2 as pb
from deptmesh.metering.v1 import metering_pb2_grpc
from deptmesh.services.metering.servicer import UsageLedgerServicer
from deptmesh.services.metering.store import UsageEntry, UsageStore
from deptmesh.sidecar import Server
from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain.core import Call, RpcMethod
from deptmesh.sidecar.metering.minutes import UsageByMinute
from deptmesh.sidecar.metering.rate_card import parse_rate_cards
from deptmesh.sidecar.metering.stage import MeteringStage

BATCH = 5000
CALLEES = ("hr", "finance", "travel")
METHODS = tuple(f"/deptmesh.bench.v1.Service/Method{n}" for n in range(8))
MONTH_START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 1, 31, 23, 0, tzinfo=datetime.UTC)
CARDS = parse_rate_cards(
    [
        {
            "effective_month": "2026-01",
            "currency": "EUR",
            "free_units": 1000,
            "services": {
                "hr": {
                    "tiers": [
                        {"name": "first 100k", "up_to_units": 100000, "unit_price": "0.002"},
                        {"name": "beyond", "unit_price": "0.001"},
                    ]
                },
                "finance": {"subscription": "50.00"},
            },
        }
    ]
)


def _minute(n: int, records: int) -> int:
    """Record n's minute: the month's minutes in order, as reports arrive over time."""
    month_minutes = 31 * 24 * 60 - 120
    return int(MONTH_START.timestamp()) + 60 * (n * month_minutes // records)


def _entries(start: int, count: int, records: int) -> list[UsageEntry]:
    return [
        UsageEntry(
            f"hr-bench/{n // BATCH}/{n % BATCH}",
            "reimbursement",
            CALLEES[n % len(CALLEES)],
            METHODS[n % len(METHODS)],
            1 + (n % 7 == 0),  # some CLIENT_ERROR
            _minute(n, records),
            3,
            6,
            300,
            900,
            4500,
        )
        for n in range(start, start + count)
    ]


def ingest(store: UsageStore, records: int) -> tuple[float, float]:
    """Records per second over `records` records recorded in batches: by the clock, and
    by this process's CPU time (the same on a machine busy with other work)."""
    spent = cpu = 0.0
    for start in range(0, records, BATCH):
        batch = _entries(start, min(BATCH, records - start), records)
        began, began_cpu = time.perf_counter(), time.process_time()
        store.record(batch)
        spent += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
    return records / spent, records / cpu


def statement_ms(store: UsageStore) -> float:
    """Milliseconds GetStatement takes for January, as the platform (the month is closed
    by then, so the statement is also kept)."""
    servicer = UsageLedgerServicer(store, lambda: CARDS, now=lambda: NOW)
    token = CURRENT_CALLER.set(Caller("platform", "", "platform"))
    try:
        began = time.perf_counter()
        request = pb.GetStatementRequest(department="reimbursement", month="2026-01")
        servicer.GetStatement(request, None)
        return (time.perf_counter() - began) * 1000
    finally:
        CURRENT_CALLER.reset(token)


def _requests(records: int) -> Iterator[pb.ReportUsageRequest]:
    base = int(NOW.timestamp()) // 60 * 60 - 3600
    for start in range(0, records, BATCH):
        yield pb.ReportUsageRequest(
            records=[
                pb.UsageRecord(
                    record_id=f"anonymous-bench/{n}",
                    caller="reimbursement",
                    callee="anonymous",  # a plaintext server's caller: the reporter itself
                    method=METHODS[n % len(METHODS)],
                    status_class=pb.STATUS_CLASS_OK,
                    minute={"seconds": base + 60 * (n * 60 // records)},
                    calls=3,
                    cost_units=6,
                    request_bytes=300,
                    response_bytes=900,
                    latency_sum_micros=4500,
                )
                for n in range(start, min(start + BATCH, records))
            ]
        )


def ingest_rpc(directory: Path, records: int) -> float:
    """Records per second through ReportUsage on a plaintext in-process server."""
    store = UsageStore(directory / "rpc.db")
    server = Server()
    server.add_service(
        pb.DESCRIPTOR.services_by_name["UsageLedgerService"],
        metering_pb2_grpc.add_UsageLedgerServiceServicer_to_server,
        UsageLedgerServicer(store, lambda: CARDS, now=lambda: NOW),
    )
    port = server.start("127.0.0.1:0")
    try:
        requests = list(_requests(records))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            ledger = metering_pb2_grpc.UsageLedgerServiceStub(channel)
            began = time.perf_counter()
            for request in requests:
                ledger.ReportUsage(request, timeout=60)
            return records / (time.perf_counter() - began)
    finally:
        server.stop(0)
        store.close()


PING = RpcMethod("/deptmesh.hr.v1.EmployeeService/GetEmployee", "", "", False, False)


def per_call_ns(calls: int) -> tuple[float, float]:
    """The metering stage's start + finish for one call (the call path), and what the drain
    thread then spends on it (counting, per minute too: off the call path).

    The call path is timed in batches of 1,000 calls and the median batch taken:
    a batch the drain thread interrupted (it takes the GIL twice a second) is an
    outlier, not the call's cost. The loop's own cost is taken out.
    """
    stage = MeteringStage("hr", by_minute=UsageByMinute("hr", cost_of=lambda method: 1))
    token = CURRENT_CALLER.set(
        Caller("reimbursement", "spiffe://x/svc/reimbursement", "reimbursement")
    )
    batch = 1000
    try:
        call = Call(PING, None, hr_pb2.GetEmployeeRequest(employee_id="E1002"))
        call.response = hr_pb2.GetEmployeeResponse(
            employee=hr_pb2.Employee(employee_id="E1002", display_name="Alan Turing")
        )
        batches = []
        for _ in range(max(1, calls // batch)):
            began = time.perf_counter_ns()
            for _ in range(batch):
                stage.start(call)
                stage.finish(call)
            batches.append(time.perf_counter_ns() - began)
        began = time.perf_counter_ns()
        for _ in range(batch):
            pass
        loop = time.perf_counter_ns() - began
        stage.drain()
        for _ in range(calls):
            stage.start(call)
            stage.finish(call)
        began = time.perf_counter_ns()
        stage.drain()
        drained = time.perf_counter_ns() - began
        return (statistics.median(batches) - loop) / batch, drained / calls
    finally:
        CURRENT_CALLER.reset(token)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metering")
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the month")
    parser.add_argument(
        "--rpc-records", type=int, default=100_000, help="records sent through ReportUsage"
    )
    parser.add_argument("--calls", type=int, default=200_000, help="calls timed for the stage")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metering-") as directory:
        store = UsageStore(Path(directory) / "ledger.db")
        try:
            rate, cpu_rate = ingest(store, arguments.records)
            print(
                f"store ingest: {rate:.0f} records/s ({cpu_rate:.0f} per CPU second;"
                f" {arguments.records} records, SQLite)"
            )
            took = statement_ms(store)
            print(f"statement over {arguments.records} records: {took:.0f} ms")
        finally:
            store.close()
        rpc_rate = ingest_rpc(Path(directory), arguments.rpc_records)
        print(f"ReportUsage ingest: {rpc_rate:.0f} records/s ({arguments.rpc_records} records)")
    stage, drain = per_call_ns(arguments.calls)
    print(f"metering stage per call (start + finish, on the call path): {stage:.0f} ns")
    print(f"drain thread per call (counted, per minute too; off the call path): {drain:.0f} ns")
    print(
        f"metering ingest_records_per_s={rate:.0f} statement_ms_1M_records={took:.0f}"
        f" per_call_ns={stage:.0f}"
    )


if __name__ == "__main__":
    main()
