"""Follows one service's healthy instances with blocking queries, in a thread."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from registry.model import ServiceInstance
from registry.protocol import Registry, RegistryUnavailable

_log = structlog.get_logger("deptmesh.registry")

OnChange = Callable[[list[ServiceInstance]], None]
T = TypeVar("T")


class ServiceWatch:
    """Calls `on_change` with the healthy instances whenever they change.

    Each round is a blocking query (index + wait): it returns as soon as the
    catalog changes, so a change reaches `on_change` within one round trip.
    When the registry is unreachable it retries with exponential backoff and
    full jitter, and `on_change` is not called: callers keep what they had.
    """

    def __init__(
        self,
        registry: Registry,
        service: str,
        on_change: OnChange,
        *,
        wait_seconds: float = 5.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
    ) -> None:
        self._registry = registry
        self._service = service
        self._on_change = on_change
        self._wait = wait_seconds
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stopping = threading.Event()
        self.last_contact = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"watch-{service}", daemon=True)

    def start(self, index: int = 0) -> None:
        self._index = index
        self._thread.start()

    def stop(self) -> None:
        # The thread may sit in a blocking query; it is a daemon and delivers
        # nothing once stopping is set, so there is no need to wait for it.
        self._stopping.set()

    def _run(self) -> None:
        backoff = self._backoff_initial
        while not self._stopping.is_set():
            try:
                index, instances = self._registry.query(self._service, self._index, self._wait)
            except RegistryUnavailable as error:
                if self._stopping.is_set():
                    return
                _log.warning("registry_unreachable", service=self._service, error=str(error))
                self._stopping.wait(random.uniform(0, backoff))
                backoff = min(backoff * 2, self._backoff_max)
                continue
            backoff = self._backoff_initial
            self.last_contact = time.monotonic()
            if self._stopping.is_set():
                return
            # A smaller index means the registry restarted: start over.
            if index != self._index:
                self._index = index if index > self._index else 0
                self._on_change(instances)


def follow(
    what: str,
    fetch: Callable[[int, float], tuple[int, T]],
    on_change: Callable[[T], None],
    stopping: threading.Event,
    *,
    index: int,
    wait_seconds: float = 10.0,
) -> threading.Thread:
    """Runs blocking queries `fetch(index, wait)` in a daemon thread until `stopping`,
    calling `on_change` with each new value. Errors are logged and retried after a
    jittered pause; the last value stays in force meanwhile."""

    def run() -> None:
        nonlocal index
        backoff = 0.05
        while not stopping.is_set():
            try:
                new_index, value = fetch(index, wait_seconds)
            except RegistryUnavailable as error:
                if stopping.is_set():
                    return
                _log.warning("registry_unreachable", watching=what, error=str(error))
                stopping.wait(random.uniform(0, backoff))
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            if new_index != index and not stopping.is_set():
                index = new_index
                on_change(value)

    thread = threading.Thread(target=run, name=f"follow-{what}", daemon=True)
    thread.start()
    return thread
