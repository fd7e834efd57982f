"""The access log: one JSON line per call, written without slowing the call down.

Every other log line goes through structlog (sidecar/logs.py). The access event
is on every call, and structlog's processor chain costs about 13 µs per event
on this machine against about 3 µs for formatting the same fields straight into
a buffered file, so the access log is written directly. The line is JSON with
the fields a structlog line has (event, level, timestamp, trace_id, span_id)
plus caller, method, status, duration_ms, request_bytes and response_bytes;
the two text fields are escaped by json.dumps. The buffer is
flushed twice a second and when the log is closed, keeping a write system call
off every call.
"""

from __future__ import annotations

import atexit
import json
import threading
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["AccessLog"]

_FLUSH_SECONDS = 0.5


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class AccessLog:
    """Appends access events to `file` (a text file opened by the caller)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_often, name="access-log", daemon=True)
        self._flusher.start()
        atexit.register(self.close)

    def write(
        self,
        *,
        caller: str,
        method: str,
        status: str,
        duration_ms: float,
        request_bytes: int,
        response_bytes: int,
        trace_id: str,
        span_id: str,
    ) -> None:
        # Only the caller and method are text from outside this process (the
        # verified caller, the dispatched path): json.dumps quotes and escapes them.
        line = (
            f'{{"event": "call", "level": "info", "timestamp": "{_now()}",'
            f' "caller": {json.dumps(caller)}, "method": {json.dumps(method)},'
            f' "status": "{status}", "duration_ms": {duration_ms},'
            f' "request_bytes": {request_bytes}, "response_bytes": {response_bytes},'
            f' "trace_id": "{trace_id}", "span_id": "{span_id}"}}'
        )
        with self._lock:
            self._file.write(line + "\n")

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        """Flushes what is buffered; the file stays open for its owner to close."""
        self._closed.set()
        self.flush()

    def _flush_often(self) -> None:
        while not self._closed.wait(_FLUSH_SECONDS):
            self.flush()
