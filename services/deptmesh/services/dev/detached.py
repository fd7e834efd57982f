"""A process started to outlive the command that started it, and found again by its record.

`spawn` starts a program in a session of its own (no terminal's hang-up or ^C
reaches it), standard input from /dev/null, standard output and error appended
to a log file; the command can then exit and the process carries on. What
`spawn` returns is a record (pid, start time, command line) that a later command
reads back: a pid alone could by then belong to another process (pids are
reused), so a record is only taken to be its process while /proc shows the same
start time and command line. Linux only, as the rest of the local mesh.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DetachedProcess", "spawn", "stop_all"]

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from its third field (the state) on; None if there is no such pid."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The second field, the command's name in parentheses, may hold spaces and ')'.
    return text[text.rindex(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (stat's 22nd field); None if gone."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def _command_line(pid: int) -> tuple[str, ...] | None:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1])


@dataclass(frozen=True, slots=True)
class DetachedProcess:
    """The record of one process `spawn` started."""

    name: str
    pid: int
    # Clock ticks since boot, from /proc: with the pid, what tells this process apart
    # from a later one that got the same pid.
    start_time: int
    argv: tuple[str, ...]
    log: Path

    @property
    def running(self) -> bool:
        """Whether the process is there and is still the one recorded (a zombie is not:
        it has exited and waits only for its parent to notice)."""
        fields = _stat_fields(self.pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return int(fields[19]) == self.start_time and _command_line(self.pid) == self.argv

    def signal(self, number: int) -> bool:
        """Sends signal `number` if the process is still the one recorded; whether it did."""
        if not self.running:
            return False
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "start_time": self.start_time,
            "argv": list(self.argv),
            "log": str(self.log),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> DetachedProcess:
        """The record `to_json` wrote (ValueError if it is not one)."""
        try:
            return cls(
                name=str(value["name"]),
                pid=int(value["pid"]),
                start_time=int(value["start_time"]),
                argv=tuple(str(part) for part in value["argv"]),
                log=Path(value["log"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a process record: {value!r}") from error


def spawn(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path,
    environ: Mapping[str, str] | None = None,
) -> DetachedProcess:
    """Starts `argv` detached (see the module's docstring), its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # posix_spawn rather than Popen: no Popen object to warn, when it is collected,
    # that its child still runs, which here is the point.
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    here = os.getcwd()
    # posix_spawn has no cwd: the child inherits ours, so ours changes for the call.
    os.chdir(cwd)
    try:
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            dict(os.environ if environ is None else environ),
            file_actions=file_actions,
            setsid=True,
        )
    finally:
        os.chdir(here)
    _wait_for_exec(pid, tuple(argv))
    start_time = _start_time(pid)
    if start_time is None:  # exited already, and was reaped: nothing is left to record
        start_time = -1
    return DetachedProcess(name, pid, start_time, tuple(argv), log)


def _wait_for_exec(pid: int, argv: tuple[str, ...], timeout: float = 10.0) -> None:
    """Polls until /proc shows `argv` as `pid`'s command line, or it has exited: for a
    moment after posix_spawn returns, the child may still show no command line, and
    would not yet be recognised as the process recorded."""
    deadline = time.monotonic() + timeout
    while _command_line(pid) != argv and time.monotonic() < deadline:
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return
        time.sleep(0.001)


def stop_all(processes: Sequence[DetachedProcess], timeout: float) -> list[DetachedProcess]:
    """SIGTERM to each recorded process still running, SIGKILL to any still there after
    `timeout`; the processes that were signalled (the others had already gone)."""
    signalled = [process for process in processes if process.signal(signal.SIGTERM)]
    if not _wait_gone(signalled, timeout):
        for process in signalled:
            process.signal(signal.SIGKILL)
        _wait_gone(signalled, 5.0)  # SIGKILL cannot be refused: only /proc lags
    return signalled


def _wait_gone(processes: Sequence[DetachedProcess], timeout: float) -> bool:
    """Polls until none of `processes` runs; False if `timeout` passed first."""
    deadline = time.monotonic() + timeout
    while True:
        for process in processes:
            _reap(process.pid)
        if not any(process.running for process in processes):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collects `pid`'s exit if it is a child of ours that has ended (when the command that
    stops a mesh also started it); a process that is not our child is left alone."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
