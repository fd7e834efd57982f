"""Follows one service's healthy instances with blocking queries, in a thread."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.protocol import Registry, RegistryRefused, RegistryUnavailable

_log = structlog.get_logger("deptmesh.registry")

OnChange = Callable[[list[ServiceInstance]], None]
T = TypeVar("T")


class ServiceWatch:
    """Calls `on_change` with the healthy instances whenever they change.

    Each round is a blocking query (index + wait): it returns as soon as the
    catalog changes, so a change reaches `on_change` within one round trip.
    When the registry is unreachable or refuses the token `follow` retries with
    backoff and jitter, and `on_change` is not called: callers keep what they had.
    """

    def __init__(
        self,
        registry: Registry,
        service: str,
        on_change: OnChange,
        *,
        wait_seconds: float = 5.0,
    ) -> None:
        self._registry = registry
        self._service = service
        self._on_change = on_change
        self._wait = wait_seconds
        self._stopping = threading.Event()
        # When the registry last answered, changed or not: the cache's staleness clock.
        self.last_contact = time.monotonic()

    def start(self, index: int = 0) -> None:
        follow(
            f"service-{self._service}",
            self._query,
            self._on_change,
            self._stopping,
            index=index,
            wait_seconds=self._wait,
        )

    def stop(self) -> None:
        # The thread may sit in a blocking query; it is a daemon and delivers
        # nothing once stopping is set, so there is no need to wait for it.
        self._stopping.set()

    def _query(self, index: int, wait_seconds: float) -> tuple[int, list[ServiceInstance]]:
        result = self._registry.query(self._service, index, wait_seconds)
        self.last_contact = time.monotonic()
        return result


# A refusal is asked about once more before it counts: a client agent that has
# just (re)started answers "ACL not found" for a moment, until it knows the servers.
REFUSED_RECHECK = 1.0
# After that the token must change before asking again helps: ask rarely.
REFUSED_FIRST_PAUSE = 5.0
REFUSED_MAX_PAUSE = 60.0


def follow(
    what: str,
    fetch: Callable[[int, float], tuple[int, T]],
    on_change: Callable[[T], None],
    stopping: threading.Event,
    *,
    index: int,
    wait_seconds: float = 10.0,
    on_refused: Callable[[RegistryRefused], None] | None = None,
) -> threading.Thread:
    """Runs blocking queries `fetch(index, wait)` in a daemon thread until `stopping`,
    calling `on_change` with each new value; the last value stays in force whenever
    a query fails.

    An unreachable registry is logged (`registry_unreachable`) and asked again
    after a jittered pause of up to 2 s. A refusal (RegistryRefused: the token
    is missing, revoked or not allowed) is asked again after a second; refused
    again, it is logged once, as `registry_refused` (or told to `on_refused`
    instead), and asked again after 5 s, then less and less often, up to once a
    minute, so a token that is fixed is picked up but a refused one never makes
    the watch spin; `registry_access_restored` says when it works again.
    """

    def run() -> None:
        nonlocal index
        backoff = 0.05
        refusals = 0
        while not stopping.is_set():
            try:
                new_index, value = fetch(index, wait_seconds)
            except RegistryRefused as error:
                if stopping.is_set():
                    return
                refusals += 1
                if refusals == 2:
                    if on_refused is None:
                        _log.error(
                            "registry_refused",
                            watching=what,
                            error=str(error),
                            keeping="the last good value",
                        )
                    else:
                        on_refused(error)
                pause = (
                    REFUSED_RECHECK
                    if refusals == 1
                    else min(REFUSED_FIRST_PAUSE * 2 ** (refusals - 2), REFUSED_MAX_PAUSE)
                )
                stopping.wait(random.uniform(pause / 2, pause))
                continue
            except RegistryUnavailable as error:
                if stopping.is_set():
                    return
                _log.warning("registry_unreachable", watching=what, error=str(error))
                stopping.wait(random.uniform(0, backoff))
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            if refusals >= 2:
                _log.info("registry_access_restored", watching=what)
            refusals = 0
            if new_index != index and not stopping.is_set():
                # A smaller index means the registry restarted: its next
                # answers count from there.
                index = new_index
                on_change(value)

    thread = threading.Thread(target=run, name=f"follow-{what}", daemon=True)
    thread.start()
    return thread
