"""deptmesh's wheel built from this working tree and installed, with its dependencies, into
a fresh virtual environment after another package that owns generic top-level names.

Built and installed once per session: every test here reads that one installation.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.packaging import plain_names
from tests.packaging.virtualenv import VirtualEnv, checked

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installation:
    """The environment, the wheel installed in it, and what was there at two moments."""

    venv: VirtualEnv
    wheel: Path
    site_packages: Path
    beside_the_other: dict[str, Any]  # both installed, deptmesh last
    after_its_uninstall: dict[str, Any]  # the other package uninstalled again


def _only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    tmp = tmp_path_factory.mktemp("packaging")
    other = plain_names.write_project(tmp / "plain-names")
    dist = tmp / "dist"
    checked(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, ROOT, other],
        timeout=300,
    )
    wheel = _only(sorted(dist.glob("deptmesh-*.whl")))
    venv = VirtualEnv(tmp / "venv")
    # The other package first: a deptmesh with generic names would overwrite its files.
    venv.pip("install", "--quiet", _only(sorted(dist.glob("plain_names-*.whl"))))
    venv.pip("install", "--quiet", wheel)
    beside = venv.report("deptmesh", plain_names.NAME)
    venv.pip("uninstall", "--quiet", "--yes", plain_names.NAME)
    after = venv.report("deptmesh", plain_names.NAME)
    return Installation(
        venv=venv,
        wheel=wheel,
        site_packages=Path(beside["site_packages"]),
        beside_the_other=beside["distributions"],
        after_its_uninstall=after["distributions"],
    )
