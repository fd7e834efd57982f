"""The demo from the wheel: it finds the Consul installer the wheel ships, installs Consul
per user rather than into a clone, and runs; without Consul it says so in one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deptmesh.registry.agent import consul_binary
from tests.packaging.conftest import ROOT

WHICH_CONSUL = "from deptmesh.registry.agent import consul_binary; print(consul_binary())"


def _path_without_consul() -> list[Path]:
    """This process's PATH less the folders that hold a `consul`."""
    folders = [Path(folder) for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    return [folder for folder in folders if not (folder / "consul").exists()]


@pytest.fixture
def user_cache(tmp_path) -> Path:
    """An XDG_CACHE_HOME whose deptmesh tools folder holds this session's Consul, as the
    installer leaves it there (Debian's package unpacked: usr/bin/consul)."""
    tools = tmp_path / "cache" / "deptmesh" / "tools" / "consul" / "usr" / "bin"
    tools.mkdir(parents=True)
    (tools / "consul").symlink_to(consul_binary())
    return tmp_path / "cache"


class TestConsulFromTheWheel:
    def test_the_wheel_ships_the_installer(self, installation):
        """The agent helper runs the installer inside the package, the repository's script."""
        finished = installation.venv.run(
            "python", "-c", "from deptmesh.registry.agent import consul_installer as i; print(i())"
        )
        assert finished.returncode == 0, finished.stderr
        installer = Path(finished.stdout.strip())
        assert installer == installation.site_packages / "deptmesh" / "registry" / "install-consul"
        assert installer.read_bytes() == (ROOT / "scripts" / "install-consul").read_bytes()

    def test_outside_a_clone_consul_lives_in_the_users_cache(self, installation, user_cache):
        """With no consul on PATH the installer uses $XDG_CACHE_HOME/deptmesh/tools, not the
        site-packages it runs from."""
        environ = installation.venv.environ(_path_without_consul(), XDG_CACHE_HOME=str(user_cache))
        finished = installation.venv.run("python", "-c", WHICH_CONSUL, environ=environ)
        assert finished.returncode == 0, finished.stderr
        expected = user_cache / "deptmesh" / "tools" / "consul" / "usr" / "bin" / "consul"
        assert finished.stdout.strip() == str(expected)


class TestDemoFromTheWheel:
    def test_the_demo_runs(self, installation, user_cache, tmp_path):
        """`deptmesh demo` drives the claim to PAID with the Consul from the user's cache."""
        environ = installation.venv.environ(
            _path_without_consul(),
            XDG_CACHE_HOME=str(user_cache),
            XDG_STATE_HOME=str(tmp_path / "state"),  # the demo's files stay there
        )
        finished = installation.venv.run("deptmesh", "demo", environ=environ, timeout=100)
        assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
        last = finished.stdout.strip().splitlines()[-1]
        assert last == "demo succeeded: the claim is PAID, once; hr may not pay"

    @pytest.mark.parametrize(
        "command", [("deptmesh", "demo"), ("python", "-m", "deptmesh.services.demo")]
    )
    def test_without_consul_the_demo_says_what_it_needs(self, installation, tmp_path, command):
        """No consul, none in the cache and no apt to fetch one: one line on stderr saying
        what to install, exit code 1, no traceback."""
        tools = tmp_path / "bin"  # just what the installer needs to get that far
        tools.mkdir()
        for tool in ("bash", "dirname"):
            found = shutil.which(tool)
            assert found is not None
            (tools / tool).symlink_to(found)
        environ = installation.venv.environ([tools], XDG_CACHE_HOME=str(tmp_path / "cache"))
        finished = installation.venv.run(*command, environ=environ)
        assert finished.returncode == 1
        assert "Traceback" not in finished.stdout + finished.stderr
        [line] = finished.stderr.splitlines()
        assert line.startswith("deptmesh demo needs a Consul agent: install-consul: no consul")
        assert "install Consul 1.8 or newer" in line
