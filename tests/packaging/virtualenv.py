"""A fresh virtual environment that the tests install wheels into and run commands in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["VirtualEnv", "checked"]

_REPORT = Path(__file__).with_name("installed_report.py")
# What would let the environment see anything but its own site-packages.
_LEAKS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def checked(args: Sequence[str | Path], **options: Any) -> subprocess.CompletedProcess[str]:
    """Runs `args`; fails with its output if it fails."""
    finished = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, check=False, **options
    )
    assert finished.returncode == 0, (
        f"{' '.join(map(str, args))} exited {finished.returncode}:\n"
        f"{finished.stdout}\n{finished.stderr}"
    )
    return finished


class VirtualEnv:
    """A virtual environment without pip of its own: this interpreter's pip installs into it,
    which keeps its creation to a fraction of a second."""

    def __init__(self, path: Path) -> None:
        venv.create(path, with_pip=False, symlinks=True, clear=True)
        self.bin = path / "bin"
        self.python = self.bin / "python"
        # Commands run in an empty folder: the current directory is on sys.path for -m.
        self.workdir = path / "work"
        self.workdir.mkdir()

    def pip(self, *args: str | Path) -> None:
        checked([sys.executable, "-m", "pip", "--python", self.python, *args], timeout=300)

    def environ(self, path: Sequence[Path] | None = None, **extra: str) -> dict[str, str]:
        """This process's environment with our bin/ first on PATH (or `path` alone after it)."""
        environ = {key: value for key, value in os.environ.items() if key not in _LEAKS}
        rest = os.environ.get("PATH", "") if path is None else os.pathsep.join(map(str, path))
        environ["PATH"] = os.pathsep.join(filter(None, [str(self.bin), rest]))
        environ.update(extra)
        return environ

    def run(
        self, *args: str | Path, environ: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs a command of the environment (`python`, `deptmesh`) from its bin/."""
        command = [str(self.bin / str(args[0])), *map(str, args[1:])]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.workdir,
            env=self.environ() if environ is None else environ,
            timeout=timeout,
        )

    def report(self, *distributions: str) -> dict[str, Any]:
        """What installed_report.py sees of `distributions` in this environment."""
        finished = checked(
            [self.python, "-I", _REPORT, *distributions], cwd=self.workdir, env=self.environ()
        )
        report: dict[str, Any] = json.loads(finished.stdout)
        return report
