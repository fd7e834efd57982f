"""Ships a service's usage per minute to the usage ledger, from a thread of its own.

Every `flush_seconds` the shipper takes what the metering stage counted since
the last flush (metering/minutes.py), makes `deptmesh.metering.v1.UsageRecord`s
of it with ids unique to this process (`<run id>/<flush>/<n>`, see `run_id`),
writes them to the spool (metering/spool.py) and only then sends the spool's
batches, oldest first, with UsageLedgerService.ReportUsage through the mesh;
a batch is deleted from the spool once the ledger acknowledged it. Sending
again is harmless: the ledger counts each record id once.

While the ledger cannot be reached or asks to wait (UNAVAILABLE,
DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, CANCELLED), batches stay
spooled and sending is tried again after a backoff that doubles up to
`max_backoff_seconds`; that is logged once (`ledger_unreachable`), and again
when it is over (`ledger_reachable_again`). Any other refusal (INVALID_ARGUMENT,
PERMISSION_DENIED, ALREADY_EXISTS, ...) would refuse that batch forever: it is
logged with the ledger's reason (`usage_batch_refused`) and set aside in the
spool, and the batches after it go on.

Reports are plumbing, not traced: each is sent in an unsampled trace context,
so neither this process nor the ledger records a span for it (the ledger
follows its caller's decision), and `deptmesh trace --last` still shows the
last business call.

`stop()` flushes once more and tries to send for at most `final_send_seconds`;
what is left stays in the spool for the next process with the same spool. A
process killed without `stop()` loses at most the calls that ended since its
last flush, `flush_seconds` worth (a flush drains the metering stage's queue
first): everything flushed before is on disk.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from typing import Protocol

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from deptmesh.metering.v1 import metering_pb2, metering_pb2_grpc
from deptmesh.sidecar.metering.minutes import MinuteUsage
from deptmesh.sidecar.metering.spool import UsageSpool

__all__ = ["MAX_BATCH_RECORDS", "TRANSIENT_CODES", "UsageShipper", "UsageSource", "run_id"]

# The contract's limit of records per ReportUsage.
MAX_BATCH_RECORDS = 5000

# Refusals that pass: the batch is sent again later.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,  # our own channel closing under the call
    }
)

_log = structlog.get_logger("deptmesh.sidecar")


class UsageSource(Protocol):
    """Where usage per minute comes from: the service's metering stage."""

    @property
    def service(self) -> str: ...

    def take_minutes(self) -> list[MinuteUsage]: ...


def run_id(instance_id: str) -> str:
    """A prefix for the record ids of one process: the instance, when it started, and a
    random part, so that a restarted instance (same address, same instance id) never
    reuses an id."""
    return f"{instance_id[:120]}.{int(time.time())}.{secrets.token_hex(4)}"


class UsageShipper:
    """Ships one service's usage to the ledger behind `channel` until `stop()`."""

    def __init__(
        self,
        usage: UsageSource,
        channel: grpc.Channel,
        spool: UsageSpool,
        *,
        run_id: str,
        flush_seconds: float = 2.0,
        send_timeout_seconds: float = 5.0,
        max_backoff_seconds: float = 10.0,
        final_send_seconds: float = 3.0,
    ) -> None:
        if not flush_seconds > 0:
            raise ValueError(f"flush_seconds must be more than 0, got {flush_seconds}")
        self._usage = usage
        self._ledger = metering_pb2_grpc.UsageLedgerServiceStub(channel)
        self._spool = spool
        self._run_id = run_id
        self._flush_seconds = flush_seconds
        self._send_timeout = send_timeout_seconds
        self._max_backoff = max_backoff_seconds
        self._final_send = final_send_seconds
        self._flushes = 0
        self._shipping = threading.Lock()  # one flush or send at a time
        self._unreachable_since: float | None = None  # monotonic, while the ledger is
        self._failures = 0  # transient failures in a row
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-shipper", daemon=True)
        self._thread.start()

    def flush(self) -> int:
        """Spools the usage counted since the last flush; how many records that made."""
        with self._shipping:
            return self._flush()

    def send_spooled(self, *, within_seconds: float | None = None) -> bool:
        """Sends spooled batches, oldest first; True once the spool is empty. Stops at the
        first transient failure, or when `within_seconds` have passed."""
        deadline = None if within_seconds is None else time.monotonic() + within_seconds
        with self._shipping:
            return self._send(deadline)

    def stop(self) -> None:
        """Stops the thread, flushes once more, and sends for at most final_send_seconds."""
        self._stopping.set()
        self._thread.join(timeout=self._send_timeout + 5)
        self.flush()
        if not self.send_spooled(within_seconds=self._final_send):
            _log.warning(
                "usage_left_in_spool",
                spool=str(self._spool.path),
                records=self._spool.waiting_records(),
            )

    def _run(self) -> None:
        next_send = 0.0  # monotonic
        while not self._stopping.wait(self._flush_seconds):
            try:
                self.flush()
                if time.monotonic() >= next_send:
                    with self._shipping:
                        sent_all = self._send(None)
                    next_send = 0.0 if sent_all else time.monotonic() + self._backoff()
            except Exception:  # noqa: BLE001 -- metering fails open: the next round tries again
                _log.exception("usage_shipping_failed")

    def _backoff(self) -> float:
        doubled: float = self._flush_seconds * 2 ** min(self._failures, 16)
        return min(self._max_backoff, doubled) * random.uniform(0.5, 1.0)

    def _flush(self) -> int:
        usage = self._usage.take_minutes()
        if not usage:
            return 0
        self._flushes += 1
        prefix = f"{self._run_id}/{self._flushes}/"
        callee = self._usage.service
        for start in range(0, len(usage), MAX_BATCH_RECORDS):
            request = metering_pb2.ReportUsageRequest(
                records=[
                    _record(f"{prefix}{n}", callee, counted)
                    for n, counted in enumerate(
                        usage[start : start + MAX_BATCH_RECORDS], start=start
                    )
                ]
            )
            self._spool.append(request)
        return len(usage)

    def _send(self, deadline: float | None) -> bool:
        while (batch := self._spool.oldest()) is not None:
            timeout = self._send_timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return False
            try:
                with trace.use_span(_unsampled(), end_on_exit=False):
                    self._ledger.ReportUsage(batch.request, timeout=timeout)
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                details: str = error.details() or ""
                if code in TRANSIENT_CODES:
                    self._unreachable(code, details)
                    return False
                _log.error(
                    "usage_batch_refused",
                    code=code.name,
                    reason=details,
                    records=len(batch.request.records),
                    set_aside_in=str(self._spool.path),
                )
                self._spool.set_aside(batch.seq, f"{code.name}: {details}")
                continue
            except Exception as error:  # noqa: BLE001 -- e.g. a closed channel: try again later
                self._unreachable(None, f"{type(error).__name__}: {error}")
                return False
            self._spool.delete(batch.seq)
            self._reachable()
        return True

    def _unreachable(self, code: grpc.StatusCode | None, details: str | None) -> None:
        self._failures += 1
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            _log.warning(
                "ledger_unreachable",
                code=None if code is None else code.name,
                reason=details,
                spool=str(self._spool.path),
            )

    def _reachable(self) -> None:
        self._failures = 0
        if self._unreachable_since is not None:
            _log.info(
                "ledger_reachable_again",
                after_seconds=round(time.monotonic() - self._unreachable_since, 1),
            )
            self._unreachable_since = None


def _unsampled() -> NonRecordingSpan:
    """A span of a new trace that nobody records: calls under it are not sampled."""
    return NonRecordingSpan(
        SpanContext(
            trace_id=random.getrandbits(128) | 1,
            span_id=random.getrandbits(64) | 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
        )
    )


def _record(record_id: str, callee: str, usage: MinuteUsage) -> metering_pb2.UsageRecord:
    return metering_pb2.UsageRecord(
        record_id=record_id,
        caller=usage.caller,
        callee=callee,
        method=usage.method,
        status_class=usage.status_class,  # type: ignore[arg-type]
        minute=Timestamp(seconds=usage.minute),
        calls=usage.calls,
        cost_units=usage.cost_units,
        request_bytes=usage.request_bytes,
        response_bytes=usage.response_bytes,
        latency_sum_micros=usage.latency_sum_micros,
    )
