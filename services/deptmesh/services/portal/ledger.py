"""The usage ledger (the `metering` department) as the portal reads it: usage per
caller, callee and method over a window, a caller's usage bucket by bucket, a
department's statement, and the quota policy the headroom is measured against.

The ledger is asked over the mesh as the portal's identity (the platform's may
read everyone's usage). QueryUsage costs the asker quota units (5 a call), so a
page asks once per department a window needs, never per edge: the usage of every
call is reported by its callee, so asking each department of the catalog covers
every edge. The channel is opened on first use and kept; a failure to open it
is tried again on the next page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.metering.v1 import metering_pb2
from deptmesh.registry.protocol import RegistryError
from deptmesh.services.portal.sources import PortalSources
from deptmesh.services.portal.unavailable import SourceUnavailable
from deptmesh.sidecar.cli.acting_as import CommandRefused, ConsulAccess
from deptmesh.sidecar.cli.ledger_client import LEDGER_SERVICE, Ledger, open_ledger
from deptmesh.sidecar.cli.usage import Summaries
from deptmesh.sidecar.quotas.policy import QuotaPolicy, parse_quota_policy
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY

__all__ = ["LedgerReader"]


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class LedgerReader:
    """Reads the ledger as `sources.identity`; close() releases its channel and leaf."""

    def __init__(self, sources: PortalSources, timeout: float = 10.0) -> None:
        self._access = ConsulAccess(sources.consul_address, sources.token_file)
        self._identity = sources.identity
        self._timeout = timeout
        self._opened = ExitStack()
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._opened.close()
            self._ledger = None

    def usage(self, departments: Iterable[str], start: datetime, end: datetime) -> Summaries:
        """Every call to or from `departments` in [start, end), per (caller, callee,
        method); a summary seen from both ends counted once."""
        found: Summaries = {}
        for department in departments:
            for summary in self._query(department, start, end):
                found[(summary.caller, summary.callee, summary.method)] = summary
        return found

    def series(
        self, department: str, start: datetime, step: timedelta, buckets: int
    ) -> list[Summaries]:
        """`department`'s usage in each of `buckets` consecutive windows of `step` from
        `start`."""
        return [
            self.usage([department], start + step * index, start + step * (index + 1))
            for index in range(buckets)
        ]

    def statement(self, department: str, month: str) -> metering_pb2.Statement:
        """`department`'s statement for `month` (YYYY-MM), to date if the month is open."""
        request = metering_pb2.GetStatementRequest(department=department, month=month)
        reply = self._ask("GetStatement", request, f"{department}'s statement for {month}")
        statement: metering_pb2.Statement = reply.statement
        return statement

    def quota_policy(self) -> QuotaPolicy | None:
        """The quota policy in Consul; None when nobody is limited."""
        ledger = self._open()
        try:
            _, document = ledger.registry.kv_entry(QUOTA_POLICY_KEY)
        except RegistryError as error:
            raise SourceUnavailable(f"the quota policy cannot be read: {error}") from None
        if document is None:
            return None
        try:
            return parse_quota_policy(document)
        except ValueError as error:
            raise SourceUnavailable(f"the quota policy is invalid: {error}") from None

    def _query(
        self, department: str, start: datetime, end: datetime
    ) -> Sequence[metering_pb2.UsageSummary]:
        request = metering_pb2.QueryUsageRequest(
            department=department, start_time=_stamp(start), end_time=_stamp(end)
        )
        reply = self._ask("QueryUsage", request, f"{department}'s usage")
        usage: Sequence[metering_pb2.UsageSummary] = reply.usage
        return usage

    def _ask(self, method: str, request: object, what: str) -> Any:
        """The ledger's reply to `method` (a stub's reply message)."""
        ledger = self._open()
        try:
            reply = getattr(ledger.stub, method)(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise SourceUnavailable(
                f"the usage ledger ({LEDGER_SERVICE}) did not answer {what}:"
                f" {error.code().name} {error.details()}"
            ) from None
        return reply

    def _open(self) -> Ledger:
        with self._lock:
            if self._ledger is None:
                opened = ExitStack()
                try:
                    self._ledger = open_ledger(self._identity, self._access, self._timeout, opened)
                except CommandRefused as refusal:
                    opened.close()
                    raise SourceUnavailable(
                        f"the usage ledger cannot be reached as {self._identity}: {refusal}"
                    ) from None
                self._opened.enter_context(opened)
            return self._ledger
