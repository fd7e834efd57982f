"""The access log: one line per call, written without slowing the call down.

Every other log line goes through structlog (deptmesh.sidecar.logs). The access event
is on every call, so it is kept off the call's path: the metering stage
(metering/stage.py) queues each ended call and hands them here in batches, from
its drain thread, twice a second. structlog's processor chain costs about 13 µs
per event on this machine, and even formatting on the call's path (about 3 µs)
showed in bench/overhead.py. The line is JSON with the fields a structlog line
has (event, level, timestamp, trace_id, span_id) plus caller, method, status,
duration_ms, request_bytes and response_bytes; the two text fields are escaped
by json.dumps. With the console format (`--log-format console`) the same fields
read as structlog's console renderer writes its lines: `<timestamp> [info     ]
call   caller=... method=...`, the text fields quoted when they hold a space, a
quote or anything unprintable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from typing import Literal, TextIO

import grpc
import structlog
from opentelemetry.trace import Span

__all__ = ["AccessLog"]

_log = structlog.get_logger("deptmesh.sidecar")

# One ended call: (unix time, caller, method, status, duration_ns, request_bytes,
# response_bytes, its server span or None).
Entry = tuple[float, str, str, grpc.StatusCode, int, int, int, Span | None]


class _JsonFormatter:
    """Formats one flush's entries. The callers and methods of a batch are few, and
    so are its seconds: each is quoted (json.dumps escapes them: only these are
    text from outside this process) or formatted once per batch."""

    def __init__(self) -> None:
        self._quoted: dict[str, str] = {}
        self._second = -1
        self._second_text = ""

    def line(self, entry: Entry) -> str:
        when, caller, method, status, duration_ns, request_bytes, response_bytes, span = entry
        context = None if span is None else span.get_span_context()
        trace_hex, span_hex = (
            (f"{context.trace_id:032x}", f"{context.span_id:016x}")
            if context is not None and context.is_valid
            else ("", "")
        )
        return (
            f'{{"event": "call", "level": "info", "timestamp": "{self._timestamp(when)}",'
            f' "caller": {self._quote(caller)}, "method": {self._quote(method)},'
            f' "status": "{status.name}", "duration_ms": {round(duration_ns / 1e6, 3)},'
            f' "request_bytes": {request_bytes}, "response_bytes": {response_bytes},'
            f' "trace_id": "{trace_hex}", "span_id": "{span_hex}"}}\n'
        )

    def _quote(self, text: str) -> str:
        quoted = self._quoted.get(text)
        if quoted is None:
            quoted = self._quoted[text] = self.quoted(text)
        return quoted

    @staticmethod
    def quoted(text: str) -> str:
        return json.dumps(text)

    def _timestamp(self, when: float) -> str:
        """ISO 8601 in UTC with microseconds, like structlog's: 2026-11-29T04:32:52.123456Z."""
        second = int(when)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((when - second) * 1e6):06d}Z"


class _ConsoleFormatter(_JsonFormatter):
    """The same fields as structlog's ConsoleRenderer(colors=False) lays out a line."""

    def line(self, entry: Entry) -> str:
        when, caller, method, status, duration_ns, request_bytes, response_bytes, span = entry
        context = None if span is None else span.get_span_context()
        ids = (
            f" span_id={context.span_id:016x} status={status.name} trace_id={context.trace_id:032x}"
            if context is not None and context.is_valid
            else f" status={status.name}"
        )
        return (
            f"{self._timestamp(when)} [info     ] call                          "
            f" caller={self._quote(caller)} duration_ms={round(duration_ns / 1e6, 3)}"
            f" method={self._quote(method)} request_bytes={request_bytes}"
            f" response_bytes={response_bytes}{ids}\n"
        )

    @staticmethod
    def quoted(text: str) -> str:
        plain = text.isprintable() and not any(c in text for c in " '\"=")
        return text if plain and text else repr(text)


class AccessLog:
    """Appends access events to `file` (a text file opened by the caller), as JSON
    lines or, with log_format "console", as the console's lines read."""

    def __init__(self, file: TextIO, log_format: Literal["json", "console"] = "json") -> None:
        self._file = file
        self._formatter = _ConsoleFormatter if log_format == "console" else _JsonFormatter
        self._lock = threading.Lock()  # the lines of one batch stay together
        self._failing = False

    def write(self, entries: Iterable[Entry]) -> None:
        """Writes the events of a batch of ended calls and flushes them to the file.

        A file that cannot be written (a full disk) loses those lines and says so
        once; the calls themselves were counted, and serving goes on.
        """
        line = self._formatter().line
        text = "".join([line(entry) for entry in entries])
        with self._lock:
            if not text or self._file.closed:
                return
            try:
                self._file.write(text)
                self._file.flush()
            except OSError as error:
                if not self._failing:
                    with suppress(OSError):  # the log may live on the same full disk
                        _log.error("access_log_write_failed", error=str(error))
                self._failing = True
            else:
                self._failing = False
