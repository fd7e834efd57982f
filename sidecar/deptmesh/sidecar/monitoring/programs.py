"""Running Prometheus and Alertmanager for a local mesh or a test: where the programs
are, how each is started, and when it is ready.

The programs come from the clone's scripts/install-prometheus (the machine's
own, or Debian's packages unpacked into .tools/). Both bind 127.0.0.1 on the
port given, keep their data in a folder of their own, and Alertmanager runs
alone (no cluster port). `dev up` starts them detached from these command
lines; a test runs them as child processes.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MonitoringPrograms",
    "MonitoringProgramsNotFound",
    "alertmanager_argv",
    "find_monitoring_programs",
    "prometheus_argv",
    "wait_until_ready",
]

_INSTALLER = Path(__file__).resolve().parents[4] / "scripts" / "install-prometheus"


class MonitoringProgramsNotFound(RuntimeError):
    """Prometheus or Alertmanager could not be had; the message says what to do."""


@dataclass(frozen=True)
class MonitoringPrograms:
    """The directory holding `prometheus`, `promtool` and `alertmanager`."""

    directory: Path

    @property
    def prometheus(self) -> Path:
        return self.directory / "prometheus"

    @property
    def promtool(self) -> Path:
        return self.directory / "promtool"

    @property
    def alertmanager(self) -> Path:
        return self.directory / "alertmanager"


def find_monitoring_programs(timeout: float = 600.0) -> MonitoringPrograms:
    """The programs, installed first if needed (MonitoringProgramsNotFound if they cannot be)."""
    if not _INSTALLER.is_file():
        raise MonitoringProgramsNotFound(
            "scripts/install-prometheus is not here (deptmesh runs from a clone only for"
            " this); install Prometheus and Alertmanager and put them on PATH"
        )
    result = subprocess.run(  # noqa: S603 -- our own installer
        [str(_INSTALLER)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["install-prometheus failed"])[-1]
        raise MonitoringProgramsNotFound(last)
    return MonitoringPrograms(Path(result.stdout.strip().splitlines()[-1]))


def prometheus_argv(programs: MonitoringPrograms, config: Path, data: Path, port: int) -> list[str]:
    return [
        str(programs.prometheus),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",  # POST /-/reload after the rules change
    ]


def alertmanager_argv(
    programs: MonitoringPrograms, config: Path, data: Path, port: int
) -> list[str]:
    return [
        str(programs.alertmanager),
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # alone: no gossip port to collide on
    ]


def wait_until_ready(url: str, timeout: float) -> None:
    """Polls `url`/-/ready until it answers 200 (TimeoutError after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not ready within {timeout}s")
        time.sleep(0.1)
