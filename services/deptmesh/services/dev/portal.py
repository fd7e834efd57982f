"""The developer portal for the local mesh, started by `dev up` last (it reads them all).

It runs detached like the departments, recorded as `portal` (so `dev down` stops
it and `dev status` shows it), on a free port of 127.0.0.1, reading Consul and the
ledger as the platform, the mesh's trace store and its Alertmanager.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from deptmesh.services.dev.departments import wait_until_serving
from deptmesh.services.dev.detached import spawn
from deptmesh.services.dev.layout import MeshLayout
from deptmesh.services.dev.record import MeshRecord, write_record

__all__ = ["PORTAL", "start_portal"]

PORTAL = "portal"


def start_portal(
    layout: MeshLayout, record: MeshRecord, say: Callable[[str], None], timeout: float
) -> MeshRecord:
    """Starts the portal, waits until it serves; the record with it and its address
    (DepartmentStartFailed if it exits or does not serve in time)."""
    argv = [
        *(sys.executable, "-m", "deptmesh.services.portal", "--listen", "127.0.0.1:0"),
        *("--consul-address", record.consul_address),
        *("--consul-token-file", str(layout.token("platform"))),
        *("--trace-store", str(record.trace_store)),
    ]
    if "alertmanager" in record.addresses:
        argv += ["--alertmanager", f"http://{record.addresses['alertmanager']}"]
    log = layout.log(PORTAL)
    offset = log.stat().st_size if log.exists() else 0
    process = spawn(PORTAL, argv, log, cwd=layout.directory)
    record = record.with_department(process)
    write_record(layout.record, record)
    address = wait_until_serving({PORTAL: process}, {PORTAL: offset}, timeout)[PORTAL]
    record = record.with_address(PORTAL, address)
    write_record(layout.record, record)
    say(f"started the portal on http://{address}/")
    return record
