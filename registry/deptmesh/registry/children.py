"""Child processes that die with the process that started them, even when it is SIGKILLed.

The Consul agents, department processes and servers that the tests, benchmarks
and the demo start are stopped by their owners on the way out; a SIGKILL gives
the owner no way out, and a child that was put in a session of its own (so that
Ctrl-C reaches its owner, which stops it in order) would live on. So every such
child is started through util-linux's `setpriv --pdeathsig KILL`: the kernel
kills it the moment its parent goes, however it goes.

Two details decide how:

- setpriv, not `Popen(preexec_fn=prctl...)`: preexec_fn (like user=) makes
  Python fork() instead of vfork(), and a fork runs gRPC's fork handlers, which
  abort the child of a process with busy gRPC threads.
- The parent-death signal fires when the *thread* that started the child exits,
  not only the process. A child started from a worker thread would be killed
  when that worker ends, so every child is started from one thread that lives
  as long as the process.

A change of user clears the signal, so a child that must run as another user
passes setpriv's options for that (`--reuid=...`) here: one setpriv applies
both, the signal last. Where setpriv does not exist (not Linux), children start
without the signal. `deptmesh dev up` does not use this: its processes must
outlive the command that started them.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from os import PathLike
from typing import Any

__all__ = ["start_child", "tied_to_parent"]

Argument = str | PathLike[str]


def tied_to_parent(command: Sequence[Argument], setpriv_options: Sequence[str] = ()) -> list[str]:
    """`command` run through setpriv so that it gets SIGKILL when its parent exits, with
    any other setpriv options (a user to run as); unchanged where setpriv is missing."""
    setpriv = shutil.which("setpriv")
    arguments = [str(part) for part in command]
    if setpriv is None:
        if setpriv_options:
            raise RuntimeError("setpriv (util-linux) is needed to run a child as another user")
        return arguments
    return [setpriv, *setpriv_options, "--pdeathsig", "KILL", "--", *arguments]


def start_child(
    command: Sequence[Argument],
    *,
    setpriv_options: Sequence[str] = (),
    **popen_options: Any,
) -> subprocess.Popen[Any]:
    """`subprocess.Popen(command, **popen_options)` for a child that is SIGKILLed when this
    process exits, started from the thread that outlives every other."""
    argv = tied_to_parent(command, setpriv_options)
    return _SPAWNER.run(lambda: subprocess.Popen(argv, **popen_options))  # noqa: S603


class _Spawner:
    """One daemon thread, started on first use, that starts every child in turn."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[Any]], Future[subprocess.Popen[Any]]]
        ] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run(self, start: Callable[[], subprocess.Popen[Any]]) -> subprocess.Popen[Any]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="deptmesh-child-starter", daemon=True
                )
                self._thread.start()
        done: Future[subprocess.Popen[Any]] = Future()
        self._requests.put((start, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            start, done = self._requests.get()
            try:
                done.set_result(start())
            except BaseException as error:  # noqa: BLE001 -- handed to the caller, who raises it
                done.set_exception(error)


_SPAWNER = _Spawner()
