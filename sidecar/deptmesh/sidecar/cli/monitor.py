"""`deptmesh monitor rules|config|alertmanager` and `deptmesh alerts`.

- `monitor rules FILE` prints Prometheus's rules for a policy file (recording
  rules, and alerts with their runbook lines; see deptmesh.sidecar.monitoring);
- `monitor config` prints a production Prometheus's configuration: every
  instance found through Consul with the monitoring token (its secret is in the
  output: write it to a file only its owner reads);
- `monitor alertmanager FILE --webhook URL` prints Alertmanager's routing of
  each alert to its department's webhook (`{department}` in URL);
- `alerts` lists what Alertmanager holds as firing, with each runbook line.

The agent is --consul-address, else $CONSUL_HTTP_ADDR, else the local mesh's
(`deptmesh dev up`), else 127.0.0.1:8500; the token --consul-token-file, else
$CONSUL_HTTP_TOKEN_FILE or $CONSUL_HTTP_TOKEN, else the local mesh's monitoring
token. Alertmanager is --alertmanager, else $DEPTMESH_ALERTMANAGER_URL, else the
local mesh's, else http://127.0.0.1:9093.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from deptmesh.sidecar.cli.tables import table
from deptmesh.sidecar.flags import host_port

__all__ = ["MONITORING_FILE", "add_alerts_command", "add_monitor_command"]

# What `deptmesh dev up` writes in the local mesh's directory: its Prometheus's and
# Alertmanager's URLs.
MONITORING_FILE = "monitoring.json"
_MONITORING = "monitoring"


def add_monitor_command(commands: Any) -> None:
    """Adds `deptmesh monitor` and its subcommands to the command's subparsers."""
    monitor = commands.add_parser(
        "monitor", help="print Prometheus's rules and configuration, and Alertmanager's"
    )
    actions = monitor.add_subparsers(dest="action", required=True)
    rules = actions.add_parser("rules", help="Prometheus's rules for a policy file")
    rules.add_argument("file", type=Path, help="the policy file (TOML)")
    rules.set_defaults(run=_rules)
    config = actions.add_parser(
        "config", help="a Prometheus configuration that scrapes every instance Consul knows"
    )
    config.add_argument(
        "--consul-address",
        type=host_port,
        help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR, else the local mesh's,"
        " else 127.0.0.1:8500)",
    )
    config.add_argument(
        "--consul-token-file",
        type=Path,
        help="the monitoring token's file (default $CONSUL_HTTP_TOKEN_FILE, else"
        " $CONSUL_HTTP_TOKEN, else the local mesh's monitoring token)",
    )
    config.add_argument(
        "--rules", type=Path, action="append", default=[], help="a rule file to load (repeat)"
    )
    config.add_argument(
        "--alertmanager",
        type=host_port,
        action="append",
        default=[],
        help="an Alertmanager's HOST:PORT to send alerts to (repeat)",
    )
    config.add_argument("--scrape-interval", default="15s", help="default 15s")
    config.set_defaults(run=_config)
    alertmanager = actions.add_parser(
        "alertmanager", help="Alertmanager's routing of each alert to its department"
    )
    alertmanager.add_argument("file", type=Path, help="the policy file (TOML)")
    alertmanager.add_argument(
        "--webhook",
        required=True,
        help="each department's webhook URL, with {department} for its name",
    )
    alertmanager.set_defaults(run=_alertmanager)


def add_alerts_command(commands: Any) -> None:
    """Adds `deptmesh alerts` to the command's subparsers."""
    alerts = commands.add_parser("alerts", help="what is firing, with each alert's runbook line")
    alerts.add_argument(
        "--alertmanager",
        help="Alertmanager's URL (default $DEPTMESH_ALERTMANAGER_URL, else the local"
        " mesh's, else http://127.0.0.1:9093)",
    )
    alerts.set_defaults(run=_alerts)


def _print(content: dict[str, Any]) -> int:
    from deptmesh.sidecar.monitoring import render

    sys.stdout.write(render(content))
    return 0


def _load(file: Path) -> Any:
    from deptmesh.sidecar.policy_document import PolicyDocumentInvalid, load_policy_file

    try:
        return load_policy_file(file)
    except PolicyDocumentInvalid as invalid:
        for line in invalid.lines:
            print(line, file=sys.stderr)
        return None
    except OSError as error:
        print(f"deptmesh monitor: {error}", file=sys.stderr)
        return None


def _rules(args: argparse.Namespace) -> int:
    from deptmesh.sidecar.monitoring import prometheus_rules

    document = _load(args.file)
    return 1 if document is None else _print(prometheus_rules(document))


def _alertmanager(args: argparse.Namespace) -> int:
    from deptmesh.sidecar.monitoring import alertmanager_config

    document = _load(args.file)
    if document is None:
        return 1
    return _print(alertmanager_config(document.departments, args.webhook))


def _config(args: argparse.Namespace) -> int:
    from deptmesh.registry.consul import DEFAULT_ADDRESS
    from deptmesh.registry.credentials import consul_token
    from deptmesh.registry.local_mesh import find_local_mesh
    from deptmesh.sidecar.monitoring import PrometheusSetup, prometheus_config

    address = args.consul_address or os.environ.get("CONSUL_HTTP_ADDR")
    token_file = args.consul_token_file
    mesh = find_local_mesh()
    if address is None and mesh is not None:
        address = mesh.consul_address
        if token_file is None and not any(
            os.environ.get(name) for name in ("CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_TOKEN")
        ):
            token_file = mesh.token_file(_MONITORING)
    try:
        token = consul_token(token_file=token_file)
    except ValueError as error:
        print(f"deptmesh monitor config: {error}", file=sys.stderr)
        return 1
    if not token:
        print(
            "deptmesh monitor config: no Consul token: give --consul-token-file with the"
            " monitoring token",
            file=sys.stderr,
        )
        return 1
    setup = PrometheusSetup(
        address or DEFAULT_ADDRESS,
        token,
        rule_files=args.rules,
        alertmanagers=args.alertmanager,
        scrape_interval=args.scrape_interval,
        evaluation_interval=args.scrape_interval,
    )
    return _print(prometheus_config(setup))


def _alertmanager_url(given: str | None) -> str:
    from deptmesh.registry.local_mesh import local_mesh_directory

    if given:
        return given.rstrip("/")
    if os.environ.get("DEPTMESH_ALERTMANAGER_URL"):
        return os.environ["DEPTMESH_ALERTMANAGER_URL"].rstrip("/")
    try:
        recorded = json.loads((local_mesh_directory() / MONITORING_FILE).read_text())
        return str(recorded["alertmanager_url"]).rstrip("/")
    except (OSError, ValueError, KeyError, TypeError):
        return "http://127.0.0.1:9093"


def _alerts(args: argparse.Namespace) -> int:
    from deptmesh.sidecar.monitoring import AlertmanagerUnavailable, firing_alerts

    url = _alertmanager_url(args.alertmanager)
    try:
        alerts = firing_alerts(url)
    except AlertmanagerUnavailable as error:
        print(f"deptmesh alerts: {error}", file=sys.stderr)
        return 1
    if not alerts:
        print(f"nothing is firing ({url})")
        return 0
    print(f"firing at {url}:")
    rows: list[tuple[str, ...]] = [("ALERT", "ABOUT", "SUMMARY")]
    for alert in alerts:
        about = ", ".join(
            f"{key}={value}"
            for key, value in sorted(alert.labels.items())
            if key in ("department", "caller", "method", "instance", "severity")
        )
        rows.append((alert.name + (" (silenced)" if alert.silenced else ""), about, alert.summary))
        rows.append(("", "runbook:", alert.runbook))
    print(table(rows))
    return 0
