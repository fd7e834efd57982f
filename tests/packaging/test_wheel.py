"""The wheel installs everything under the one name `deptmesh`, beside anyone's generic names."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.packaging import plain_names
from tests.packaging.conftest import ROOT, Installation

MOMENTS = ["beside_the_other", "after_its_uninstall"]


def _distributions(installation: Installation, moment: str) -> dict:
    distributions: dict = getattr(installation, moment)
    return distributions


class TestWheelContents:
    def test_the_wheel_holds_only_deptmesh_and_its_dist_info(self, installation):
        """Every file the wheel's RECORD lists is under deptmesh/ or its .dist-info/."""
        with zipfile.ZipFile(installation.wheel) as wheel:
            record_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
            record = wheel.read(record_name).decode()
        paths = [line.split(",")[0] for line in record.splitlines() if line]
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        assert {path.split("/")[0] for path in paths} == {
            "deptmesh",
            f"deptmesh-{version}.dist-info",
        }
        # A namespace package: no part of deptmesh claims the name for itself.
        assert "deptmesh/__init__.py" not in paths
        assert "deptmesh/hr/v1/hr_pb2.py" in paths
        assert "deptmesh/services/hr/__main__.py" in paths


class TestBesideAnotherPackage:
    def test_the_generic_top_level_names_stay_the_other_packages(self, installation):
        """`services`, `registry` and `sidecar` import the other package's own modules."""
        other = installation.beside_the_other[plain_names.NAME]
        assert other["installed"]
        assert other["missing"] == other["changed"] == []
        site = installation.site_packages
        assert {name: module["file"] for name, module in other["modules"].items()} == {
            "registry": str(site / "registry" / "__init__.py"),
            "services": str(site / "services" / "__init__.py"),
            "services.hr": str(site / "services" / "hr.py"),
            "sidecar": str(site / "sidecar" / "__init__.py"),
        }
        assert {module["owner"] for module in other["modules"].values()} == {plain_names.NAME}

    @pytest.mark.parametrize("moment", MOMENTS)
    def test_deptmesh_is_whole(self, installation, moment):
        """Beside the other package, and after it is uninstalled, every file deptmesh
        installed is there unchanged and every module of it imports from deptmesh/."""
        deptmesh = _distributions(installation, moment)["deptmesh"]
        assert deptmesh["missing"] == deptmesh["changed"] == []
        failed = {name: m["error"] for name, m in deptmesh["modules"].items() if "error" in m}
        assert failed == {}
        package = installation.site_packages / "deptmesh"
        outside = [
            name
            for name, module in deptmesh["modules"].items()
            if not Path(module["file"]).is_relative_to(package)
        ]
        assert outside == []
        assert {"deptmesh.services.hr", "deptmesh.sidecar", "deptmesh.hr.v1.hr_pb2"} <= set(
            deptmesh["modules"]
        )
        assert deptmesh["namespaces"] == {
            "deptmesh": {"file": None, "owner": None, "path": [str(package)]}
        }

    def test_the_other_package_uninstalls_cleanly(self, installation):
        """Uninstalling the other package removes its names and nothing of deptmesh's."""
        assert installation.after_its_uninstall[plain_names.NAME] == {"installed": False}
        for name in plain_names.MODULES:
            assert not (installation.site_packages / name).exists()


class TestCommandsFromTheWheel:
    def test_a_service_module_runs(self, installation):
        """`python -m deptmesh.services.hr --help` prints its usage."""
        finished = installation.venv.run("python", "-m", "deptmesh.services.hr", "--help")
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout.startswith("usage:")

    def test_the_console_script_lists_its_commands(self, installation):
        """`deptmesh --help` lists its own commands and the demo that deptmesh.services adds."""
        finished = installation.venv.run("deptmesh", "--help")
        assert finished.returncode == 0, finished.stderr
        for command in ("version", "demo", "services", "quota", "trace"):
            assert command in finished.stdout

    def test_the_console_script_prints_the_version(self, installation):
        """`deptmesh version` prints the version the project declares."""
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        finished = installation.venv.run("deptmesh", "version")
        assert (finished.returncode, finished.stdout) == (0, f"deptmesh {version}\n")
