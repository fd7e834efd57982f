"""The deptmesh command line."""

from __future__ import annotations

import pytest

from deptmesh.sidecar.cli.command import main


class TestCli:
    def test_version_prints_the_installed_version(self, capsys):
        """`deptmesh version` prints the package version."""
        assert main(["version"]) == 0
        assert capsys.readouterr().out.startswith("deptmesh 0.")

    def test_a_command_is_required(self):
        """Running `deptmesh` without a command is a usage error."""
        with pytest.raises(SystemExit) as exited:
            main([])
        assert exited.value.code == 2
