"""The company's policy file ships in the wheel, and the installed command checks it."""

from __future__ import annotations

import zipfile


class TestCompanyPolicyInTheWheel:
    def test_the_wheel_holds_the_policy_file(self, installation):
        """deptmesh/services/company_policy.toml is package data of the wheel."""
        with zipfile.ZipFile(installation.wheel) as wheel:
            assert "deptmesh/services/company_policy.toml" in wheel.namelist()

    def test_the_installed_command_checks_the_installed_file(self, installation):
        """`deptmesh policy check` of the installed file validates it, offline."""
        path = installation.site_packages / "deptmesh" / "services" / "company_policy.toml"
        finished = installation.venv.run(
            "deptmesh", "policy", "check", str(path), "--consul-address", "127.0.0.1:1"
        )
        assert finished.returncode == 0, finished.stderr
        assert f"{path}: valid, schema 2" in finished.stdout
