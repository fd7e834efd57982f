"""Prometheus and Alertmanager for the local mesh, started by `dev up` after the departments.

Prometheus finds every department through the local Consul agent with the
monitoring token, and loads the rules generated from the company's policy;
Alertmanager routes each alert by department to receivers that send nowhere
(`deptmesh alerts` and the UIs show what fires). Both run detached, recorded
like the departments (so `dev down` stops them), on free ports of 127.0.0.1,
their configurations and data under the layout's `monitoring/`; their URLs go
in `monitoring.json` for `deptmesh alerts`. `up` returns once Prometheus
scrapes every department's instance.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from deptmesh.services.company_policy import company_policy
from deptmesh.services.dev.departments import DEPARTMENTS
from deptmesh.services.dev.detached import spawn
from deptmesh.services.dev.layout import MeshLayout
from deptmesh.services.dev.record import MeshRecord, write_record
from deptmesh.sidecar.monitoring import (
    PrometheusSetup,
    alertmanager_argv,
    alertmanager_config,
    find_monitoring_programs,
    prometheus_argv,
    prometheus_config,
    prometheus_rules,
    render,
    wait_until_ready,
)

__all__ = ["MONITORING", "start_monitoring"]

# The processes this module adds to the record, beside the departments.
MONITORING = ("prometheus", "alertmanager")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def start_monitoring(
    layout: MeshLayout, record: MeshRecord, say: Callable[[str], None], timeout: float
) -> MeshRecord:
    """Starts both (see the module's docstring); the record with them and their addresses
    (MonitoringProgramsNotFound, or TimeoutError when they do not get ready in time)."""
    programs = find_monitoring_programs()
    folder = layout.monitoring
    folder.mkdir(mode=0o700, exist_ok=True)
    document = company_policy()
    rules = folder / "rules.json"
    rules.write_text(render(prometheus_rules(document)))
    alertmanager_port, prometheus_port = _free_port(), _free_port()
    alertmanager_file = folder / "alertmanager.json"
    alertmanager_file.write_text(render(alertmanager_config(document.departments, None)))
    setup = PrometheusSetup(
        record.consul_address,
        layout.token("monitoring").read_text().strip(),
        rule_files=[rules],
        alertmanagers=[f"127.0.0.1:{alertmanager_port}"],
        scrape_interval="5s",
        evaluation_interval="5s",
        refresh_interval="5s",
    )
    prometheus_file = folder / "prometheus.json"
    _write_private(prometheus_file, render(prometheus_config(setup)))  # holds the token
    argvs = {
        "alertmanager": alertmanager_argv(
            programs, alertmanager_file, folder / "alertmanager-data", alertmanager_port
        ),
        "prometheus": prometheus_argv(
            programs, prometheus_file, folder / "prometheus-data", prometheus_port
        ),
    }
    ports = {"alertmanager": alertmanager_port, "prometheus": prometheus_port}
    for name in MONITORING:
        process = spawn(name, argvs[name], layout.log(name), cwd=layout.directory)
        record = record.with_department(process).with_address(name, f"127.0.0.1:{ports[name]}")
        write_record(layout.record, record)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    for name in MONITORING:
        wait_until_ready(urls[name], timeout)
    _write_private(
        layout.monitoring_description,
        json.dumps(
            {"prometheus_url": urls["prometheus"], "alertmanager_url": urls["alertmanager"]}
        ),
    )
    _wait_until_scraped(urls["prometheus"], record, timeout)
    say(f"started Prometheus on {urls['prometheus']}: every department's instance is a target")
    say(f"started Alertmanager on {urls['alertmanager']}")
    return record


def _wait_until_scraped(prometheus: str, record: MeshRecord, timeout: float) -> None:
    """Until Prometheus's targets include every department, each scraped and up."""
    deadline = time.monotonic() + timeout
    while True:
        healthy = set()
        try:
            with urllib.request.urlopen(f"{prometheus}/api/v1/targets", timeout=5) as answer:  # noqa: S310
                targets = json.load(answer)["data"]["activeTargets"]
            healthy = {t["labels"].get("department") for t in targets if t["health"] == "up"}
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        missing = sorted(set(DEPARTMENTS) - healthy)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Prometheus does not scrape {', '.join(missing)} after {timeout}s;"
                f" its log: {record.departments['prometheus'].log}"
            )
        time.sleep(0.2)
