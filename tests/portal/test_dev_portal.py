"""`deptmesh dev up` starts the portal over the local mesh and prints its address; the
portal reads that mesh (its catalog, its Alertmanager); `status` shows it, `down`
stops it."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.test_dev_mesh import DEPARTMENTS, DevMesh

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def mesh_up(tmp_path) -> Iterator[tuple[DevMesh, str]]:
    """A local mesh of the test's own (a test takes it down, so none is shared), and what
    `up` printed; taken down after."""
    mesh = DevMesh(tmp_path / "dev")
    try:
        yield mesh, mesh.up().stdout
    finally:
        mesh.tear_down()


def _page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read().decode()


class TestDevPortal:
    def test_up_prints_the_portal_and_it_serves_the_mesh(self, mesh_up):
        """`up` prints the portal's address; there its catalog lists every department of
        the local mesh, and its alerts page asks the mesh's Alertmanager."""
        mesh, printed = mesh_up
        [url] = re.findall(r"^  portal +(http://127\.0\.0\.1:\d+)/", printed, re.MULTILINE)
        assert mesh.record().addresses["portal"] == url.removeprefix("http://")
        catalog = _page(f"{url}/")
        for name in DEPARTMENTS:
            assert f'data-service="{name}"' in catalog
        alerts = _page(f"{url}/alerts")
        assert 'class="notice"' not in alerts
        assert mesh.record().addresses["alertmanager"] in alerts

    def test_status_shows_it_and_down_stops_it(self, mesh_up):
        """`status` lists the portal as running at its address; after `down` it is gone."""
        mesh, _ = mesh_up
        portal = mesh.record().departments["portal"]
        status = mesh.dev("status").stdout
        assert re.search(r"^  portal +running +pid \d+ +127\.0\.0\.1:\d+", status, re.MULTILINE)
        mesh.dev("down", "--timeout", "10")
        assert not portal.running
