"""`deptmesh monitor rules|config|alertmanager`: what each prints for the company's policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deptmesh.sidecar.cli import main
from deptmesh.sidecar.monitoring import ALERTS

COMPANY_POLICY = (
    Path(__file__).resolve().parents[2] / "services/deptmesh/services/company_policy.toml"
)


class TestMonitorCommand:
    def test_rules_holds_every_alert(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`monitor rules FILE` prints the rule groups, every alert among them."""
        assert main(["monitor", "rules", str(COMPANY_POLICY)]) == 0
        groups = json.loads(capsys.readouterr().out)["groups"]
        assert {r["alert"] for g in groups for r in g["rules"] if "alert" in r} == set(ALERTS)

    def test_config_discovers_through_consul_with_the_token(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`monitor config` asks Consul, at the given address, with the token of the file."""
        monkeypatch.setenv("DEPTMESH_DEV_DIR", str(tmp_path / "no-mesh"))
        token = tmp_path / "monitoring.token"
        token.write_text("the-secret\n")
        arguments = ["--consul-address", "10.0.0.5:8500", "--consul-token-file", str(token)]
        assert main(["monitor", "config", *arguments]) == 0
        [scrape] = json.loads(capsys.readouterr().out)["scrape_configs"]
        [consul] = scrape["consul_sd_configs"]
        assert (consul["server"], consul["token"]) == ("10.0.0.5:8500", "the-secret")

    def test_a_bad_policy_file_fails_with_its_lines(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """An invalid policy prints its problems, one line each, and exits 1."""
        policy = tmp_path / "policy.toml"
        policy.write_text("schema_version = 2\n[monitoring]\ntraffic_share = 3\n")
        assert (
            main(["monitor", "alertmanager", str(policy), "--webhook", "http://x/{department}"])
            == 1
        )
        assert "monitoring.traffic_share" in capsys.readouterr().err

    def test_alertmanager_routes_each_department_to_its_webhook(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`monitor alertmanager` gives each department a receiver at its own URL."""
        webhook = ["--webhook", "https://pager.example/{department}"]
        assert main(["monitor", "alertmanager", str(COMPANY_POLICY), *webhook]) == 0
        receivers = json.loads(capsys.readouterr().out)["receivers"]
        urls = {r["name"]: r["webhook_configs"][0]["url"] for r in receivers}
        assert urls["department-hr"] == "https://pager.example/hr"
        assert urls["platform"] == "https://pager.example/platform"
