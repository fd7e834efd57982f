"""`deptmesh dev up` starts Prometheus and Alertmanager with the mesh: Prometheus finds
every department through Consul and scrapes it, its UI answers at the address `up`
prints, `deptmesh alerts` asks the mesh's Alertmanager, and `down` stops both."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.test_dev_mesh import DEPARTMENTS, DEPTMESH, DevMesh


@pytest.fixture(scope="module")
def mesh_up(tmp_path_factory) -> Iterator[tuple[DevMesh, str]]:
    """A mesh brought up once; yields it and what `up` printed."""
    mesh = DevMesh(tmp_path_factory.mktemp("dev"))
    try:
        printed = mesh.up().stdout
        yield mesh, printed
    finally:
        mesh.tear_down()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


class TestDevMonitoring:
    def test_every_department_is_a_healthy_target(self, mesh_up) -> None:
        """Prometheus scrapes one instance of each department, found through Consul, all up."""
        mesh, _ = mesh_up
        prometheus = mesh.record().addresses["prometheus"]
        _, body = _get(f"http://{prometheus}/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"]
        assert sorted(t["labels"]["department"] for t in targets) == sorted(DEPARTMENTS)
        assert {t["health"] for t in targets} == {"up"}

    def test_the_printed_ui_address_answers(self, mesh_up) -> None:
        """`up` prints Prometheus's UI address, and its targets page answers."""
        _, printed = mesh_up
        [url] = re.findall(r"open (http://\S+/classic/targets)", printed)
        status, body = _get(url)
        assert status == 200
        assert b"deptmesh" in body  # the job's name, on the page

    def test_alerts_asks_the_meshs_alertmanager(self, mesh_up) -> None:
        """`deptmesh alerts`, given nothing, asks the local mesh's Alertmanager."""
        mesh, _ = mesh_up
        finished = subprocess.run(
            [str(DEPTMESH), "alerts"],
            capture_output=True,
            text=True,
            check=False,
            env=mesh.environ,
            timeout=30,
        )
        assert finished.returncode == 0, finished.stderr
        alertmanager = mesh.record().addresses["alertmanager"]
        assert f"http://{alertmanager}" in finished.stdout

    def test_down_stops_prometheus_and_alertmanager(self, tmp_path) -> None:
        """`down` stops both, with the departments and the agent."""
        mesh = DevMesh(tmp_path / "dev")
        try:
            mesh.up()
            started = mesh.record().departments
            monitoring = [started["prometheus"], started["alertmanager"]]
            assert all(process.running for process in monitoring)
        finally:
            mesh.tear_down()
        assert not any(process.running for process in monitoring)
