"""Starts one of every process the test harness starts, then waits to be killed.

    python -m tests.integration.reaped_harness FOLDER

A Consul dev agent (DevAgent), a one-server ConsulCluster, a department process
(DepartmentProcess) started from a worker thread that has ended by then, a
service process (ServiceProcessUnderTest), this run's PostgreSQL server
(tests/postgres.py) and Prometheus (tests/monitoring). Prints `ready` once all
are up, then waits for its standard input to close; tests/integration/
test_reaping.py SIGKILLs it and looks for survivors.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cluster import ConsulCluster
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.monitoring.programs import prometheus_argv
from tests.integration.servers import ServiceProcessUnderTest
from tests.monitoring.prometheus_programs import ProgramProcess, install_prometheus
from tests.postgres import PostgresServer


def main() -> None:
    folder = Path(sys.argv[1])
    DevAgent().start()
    ConsulCluster(servers=1, hosts=0).start()
    # The parent-death signal follows the thread that started a child: this one ends
    # before the kill, and its department must still be there, and still die with us.
    department = DepartmentProcess(
        "deptmesh.services.hr",
        ["--port", "0", "--db", str(folder / "hr.db"), "--seed-demo-data"],
        folder / "hr.log",
    )
    starter = threading.Thread(target=department.start)
    starter.start()
    starter.join()
    ServiceProcessUnderTest("finance", "--db", str(folder / "finance.db"))
    PostgresServer.start()
    config = folder / "prometheus.json"
    config.write_text('{"scrape_configs": []}')
    argv = prometheus_argv(install_prometheus(), config, folder / "prometheus-data", 0)
    ProgramProcess(argv, folder / "prometheus.log")
    sys.stdout.write(f"ready {department.address}\n")
    sys.stdout.flush()
    sys.stdin.read()


if __name__ == "__main__":
    main()
