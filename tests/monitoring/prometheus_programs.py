"""Prometheus, promtool and Alertmanager for the tests, from scripts/install-prometheus
(the machine's own, or Debian's packages fetched into .tools/): a machine without
them gets them, and a failed install fails the run, never skips it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from deptmesh.registry.children import start_child

__all__ = ["ProgramProcess", "PrometheusPrograms", "install_prometheus"]

_INSTALLER = Path(__file__).resolve().parents[2] / "scripts" / "install-prometheus"


@dataclass(frozen=True)
class PrometheusPrograms:
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

    def promtool_run(self, *arguments: str | Path) -> subprocess.CompletedProcess[str]:
        """promtool with `arguments`; its output is in the result, checked by the caller."""
        return subprocess.run(
            [str(self.promtool), *map(str, arguments)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def alertmanager_check(self, config: Path) -> subprocess.CompletedProcess[str]:
        """Alertmanager's configuration check, by its amtool."""
        amtool = self.directory / "amtool"
        return subprocess.run(
            [str(amtool), "check-config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


class ProgramProcess:
    """A program run for the test's length, its output in a log file; it dies with the test
    run, even a SIGKILLed one."""

    def __init__(self, argv: list[str], log: Path) -> None:
        with log.open("w") as output:
            self.process = start_child(argv, stdout=output, stderr=subprocess.STDOUT)
        self.log = log

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def install_prometheus() -> PrometheusPrograms:
    """The three programs; fails the run if they cannot be had."""
    result = subprocess.run(
        [str(_INSTALLER)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/install-prometheus failed:\n{result.stderr}", pytrace=False)
    return PrometheusPrograms(Path(result.stdout.strip().splitlines()[-1]))
