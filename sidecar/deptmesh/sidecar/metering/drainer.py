"""One background thread that drains the per-call queues of a process, twice a second.

The metering stage (metering/stage.py) only appends each ended call to a queue;
counting it and writing its access-log line happen here, in batches, off the
calls' path. Queues are drained again at exit so that no line is lost. Objects
are held weakly: a server that is gone stops being drained.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from contextlib import suppress
from typing import Protocol

import structlog

__all__ = ["Drainable", "drain_periodically"]

DRAIN_SECONDS = 0.5

_log = structlog.get_logger("deptmesh.sidecar")


class Drainable(Protocol):
    def drain(self) -> None: ...


_lock = threading.Lock()
_drained: weakref.WeakSet[Drainable] = weakref.WeakSet()
_thread: threading.Thread | None = None


def drain_periodically(queue_owner: Drainable) -> None:
    """Drains `queue_owner` every DRAIN_SECONDS from now on, and at exit."""
    global _thread
    with _lock:
        _drained.add(queue_owner)
        if _thread is None:
            _thread = threading.Thread(target=_drain_forever, name="deptmesh-drain", daemon=True)
            _thread.start()
            atexit.register(_drain_all)


def _drain_all() -> None:
    with _lock:
        owners = list(_drained)
    for owner in owners:
        try:
            owner.drain()
        except Exception:  # noqa: BLE001 -- one failing queue must not stop the others
            with suppress(Exception):  # nor may the log saying so
                _log.exception("drain_failed", queue=type(owner).__name__)


def _drain_forever() -> None:
    while True:  # a daemon thread: it ends with the process
        time.sleep(DRAIN_SECONDS)
        _drain_all()
