"""A fake usage ledger: a real grpc server implementing UsageLedgerService, for the tests
of the sidecar's shipping (the real ledger is deptmesh.services.metering)."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc

from deptmesh.metering.v1 import metering_pb2, metering_pb2_grpc


class FakeLedger(metering_pb2_grpc.UsageLedgerServiceServicer):
    """A ledger that counts each record id once, and refuses when told to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, metering_pb2.UsageRecord] = {}
        self.deliveries: list[list[str]] = []  # the record ids of every request, refused or not
        self.refusals: list[grpc.StatusCode] = []  # the next requests' answers
        self.lose_answers = 0  # the next requests are recorded, then answered as failed
        self.traceparents: list[str | None] = []  # what each request carried

    def ReportUsage(self, request, context):
        with self.lock:
            self.deliveries.append([record.record_id for record in request.records])
            metadata = dict(context.invocation_metadata())
            self.traceparents.append(metadata.get("traceparent"))
            if self.refusals:
                code = self.refusals.pop(0)
                context.abort(code, f"refused with {code.name} by the test")
            recorded = duplicates = 0
            for record in request.records:
                if record.record_id in self.records:
                    assert self.records[record.record_id] == record  # a redelivery is identical
                    duplicates += 1
                else:
                    self.records[record.record_id] = record
                    recorded += 1
            if self.lose_answers:
                self.lose_answers -= 1
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "recorded, answered too late")
        return metering_pb2.ReportUsageResponse(recorded=recorded, duplicates=duplicates)

    def calls(self) -> int:
        with self.lock:
            return sum(record.calls for record in self.records.values())


class LedgerServer:
    """The fake ledger on a real grpc server, which can be stopped and started on its port."""

    def __init__(self) -> None:
        self.ledger = FakeLedger()
        self.port = 0
        self._server: grpc.Server | None = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        metering_pb2_grpc.add_UsageLedgerServiceServicer_to_server(self.ledger, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(0).wait()
            self._server = None
