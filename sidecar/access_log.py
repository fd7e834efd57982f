"""The access log: one JSON line per call, written without slowing the call down.

Every other log line goes through structlog (sidecar/logs.py). The access event
is on every call, so it is kept off the call's path: the call appends its
fields to a queue (a fraction of a microsecond) and a thread formats the lines
and writes them to the file twice a second, and when the log is closed.
structlog's processor chain costs about 13 µs per event on this machine, and
even formatting on the call's path (about 3 µs) showed in bench/overhead.py.
The line is JSON with the fields a structlog line has (event, level,
timestamp, trace_id, span_id) plus caller, method, status, duration_ms,
request_bytes and response_bytes; the two text fields are escaped by
json.dumps.
"""

from __future__ import annotations

import atexit
import collections
import json
import threading
import time
from typing import TextIO

import grpc

__all__ = ["AccessLog"]

_FLUSH_SECONDS = 0.5

# What a call leaves for the writer: (unix time, caller, method, status,
# duration_ms, request_bytes, response_bytes, trace_id, span_id); ids as ints, 0 for none.
Entry = tuple[float, str, str, grpc.StatusCode, float, int, int, int, int]


class _Formatter:
    """Formats one flush's entries. The callers and methods of a batch are few, and
    so are its seconds: each is quoted (json.dumps escapes them: only these are
    text from outside this process) or formatted once per batch."""

    def __init__(self) -> None:
        self._quoted: dict[str, str] = {}
        self._second = -1
        self._second_text = ""

    def line(self, entry: Entry) -> str:
        when, caller, method, status, duration_ms, request_bytes, response_bytes = entry[:7]
        trace_id, span_id = entry[7:]
        trace_hex, span_hex = (f"{trace_id:032x}", f"{span_id:016x}") if trace_id else ("", "")
        return (
            f'{{"event": "call", "level": "info", "timestamp": "{self._timestamp(when)}",'
            f' "caller": {self._quote(caller)}, "method": {self._quote(method)},'
            f' "status": "{status.name}", "duration_ms": {duration_ms},'
            f' "request_bytes": {request_bytes}, "response_bytes": {response_bytes},'
            f' "trace_id": "{trace_hex}", "span_id": "{span_hex}"}}\n'
        )

    def _quote(self, text: str) -> str:
        quoted = self._quoted.get(text)
        if quoted is None:
            quoted = self._quoted[text] = json.dumps(text)
        return quoted

    def _timestamp(self, when: float) -> str:
        """ISO 8601 in UTC with microseconds, like structlog's: 2026-11-29T04:32:52.123456Z."""
        second = int(when)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((when - second) * 1e6):06d}Z"


class AccessLog:
    """Appends access events to `file` (a text file opened by the caller)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        # deque.append and popleft are atomic: calls never wait for the writer.
        self._pending: collections.deque[Entry] = collections.deque()
        self._lock = threading.Lock()  # one writer at a time: the thread, flush(), close()
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_often, name="access-log", daemon=True)
        self._flusher.start()
        atexit.register(self.close)

    def record(self, entry: Entry) -> None:
        """Queues one call's event; it reaches the file within half a second."""
        self._pending.append(entry)

    def flush(self) -> None:
        """Writes every queued event to the file now."""
        with self._lock:
            if self._file.closed:
                return
            lines = []
            pending = self._pending
            line = _Formatter().line
            while pending:
                lines.append(line(pending.popleft()))
            self._file.write("".join(lines))
            self._file.flush()

    def close(self) -> None:
        """Writes what is queued; the file stays open for its owner to close."""
        self._closed.set()
        self.flush()

    def _flush_often(self) -> None:
        while not self._closed.wait(_FLUSH_SECONDS):
            self.flush()
