"""Policy documents the platform team owns, kept current: in Consul KV or in a file.

A document source is a callable returning the last good parsed value, cheap
enough to call on every RPC. A new version that does not validate is logged
(`<name>_rejected`, with the reason) and changes nothing: the last good value
stays in force. Applying one is logged as `<name>_applied`.

- ConsulDocument follows a KV key with blocking queries, so a change applies
  within one round trip. A missing key means `absent`. When Consul refuses the
  token the refusal is logged once (`registry_refused`) and the last good value
  stays in force.
- FileDocument looks at its file again at most once per `check_interval`, from
  the call that finds the interval has passed. A bad file at start is an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import structlog

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.watch import follow
from deptmesh.sidecar.control_plane import asking_consul

__all__ = ["ConsulDocument", "FileDocument"]

T = TypeVar("T")
_log = structlog.get_logger("deptmesh.sidecar")

# A policy document is a few kilobytes; anything this large is not one.
MAX_DOCUMENT_BYTES = 1024 * 1024


class ConsulDocument(Generic[T]):
    """The value of a validated document at a Consul KV key, watched."""

    def __init__(
        self,
        registry: ConsulRegistry,
        key: str,
        parse: Callable[[str], T],
        *,
        absent: T,
        name: str,
        wait_seconds: float = 10.0,
    ) -> None:
        self._key = key
        self._parse = parse
        self._absent = absent
        self._name = name
        self._stopping = threading.Event()
        self._value = absent
        with asking_consul(f"the {name} document at {key}"):
            index, text = registry.kv_value(key, 0, 0)
        self._apply(text)
        follow(
            f"kv-{key}",
            lambda index, wait: registry.kv_value(key, index, wait),
            self._apply,
            self._stopping,
            index=index,
            wait_seconds=wait_seconds,
        )

    def __call__(self) -> T:
        return self._value

    def stop(self) -> None:
        self._stopping.set()

    def _apply(self, text: str | None) -> None:
        if text is not None and len(text) > MAX_DOCUMENT_BYTES:
            _log.error(f"{self._name}_rejected", key=self._key, reason="document too large")
            return
        try:
            value = self._absent if text is None else self._parse(text)
        except ValueError as error:
            _log.error(f"{self._name}_rejected", key=self._key, reason=str(error))
            return
        self._value = value
        _log.info(f"{self._name}_applied", key=self._key, present=text is not None)


class FileDocument(Generic[T]):
    """The value of a validated document in a file, re-read when the file changes.

    Raises OSError or ValueError at construction when the file cannot be read or
    does not validate.
    """

    def __init__(
        self,
        path: Path,
        parse: Callable[[bytes], T],
        *,
        name: str,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if check_interval < 0:
            raise ValueError(f"check_interval must be >= 0 seconds, got {check_interval}")
        self._path = path
        self._parse = parse
        self._name = name
        self._interval = check_interval
        self._clock = clock
        # One caller looks at the file; the others use the value in force meanwhile.
        self._checking = threading.Lock()
        content = self._read()
        try:
            self._value = parse(content)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
        # What the file held when last read (bytes), or why it could not be read (str).
        self._seen: bytes | str = content
        self._next_check = clock() + check_interval
        _log.info(f"{name}_applied", path=str(path))

    def __call__(self) -> T:
        if self._clock() >= self._next_check and self._checking.acquire(blocking=False):
            try:
                self._next_check = self._clock() + self._interval
                self._check()
            finally:
                self._checking.release()
        return self._value

    def _read(self) -> bytes:
        with self._path.open("rb") as file:
            content = file.read(MAX_DOCUMENT_BYTES + 1)
        if len(content) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{self._path}: larger than {MAX_DOCUMENT_BYTES} bytes")
        return content

    def _check(self) -> None:
        seen: bytes | str
        try:
            seen = self._read()
        except OSError as error:
            seen = f"cannot read the file: {error.strerror or error}"
        except ValueError as error:
            seen = str(error)
        if seen == self._seen:
            return  # unchanged, or the same problem as last time (already logged)
        self._seen = seen
        try:
            if isinstance(seen, str):
                raise ValueError(seen)
            value = self._parse(seen)
        except ValueError as error:
            _log.error(f"{self._name}_rejected", path=str(self._path), reason=str(error))
            return
        self._value = value
        _log.info(f"{self._name}_applied", path=str(self._path))
