"""The `deptmesh` command: platform tools, one subcommand each."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version


def _demo(_: argparse.Namespace) -> int:
    from services import demo  # imported here: only this command needs the services

    return demo.main()


def _services(args: argparse.Namespace) -> int:
    from registry.consul import ConsulRegistry
    from registry.protocol import RegistryUnavailable

    try:
        instances = ConsulRegistry(args.consul_address).services()
    except RegistryUnavailable as error:
        print(f"deptmesh services: {error}", file=sys.stderr)
        return 1
    rows = [("SERVICE", "INSTANCE", "ADDRESS", "HEALTH", "CONTRACT")]
    rows += [
        (i.service, i.instance_id, i.endpoint, i.health.value, i.contract_version or "-")
        for i in instances
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _version(_: argparse.Namespace) -> int:
    print(f"deptmesh {version('deptmesh')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deptmesh", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the installed version").set_defaults(run=_version)
    commands.add_parser(
        "demo", help="start the three departments and drive one claim to PAID"
    ).set_defaults(run=_demo)
    services = commands.add_parser(
        "services", help="list services, instances, health and contract version from Consul"
    )
    services.add_argument(
        "--consul-address",
        default=os.environ.get("CONSUL_HTTP_ADDR", "127.0.0.1:8500"),
        help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR or 127.0.0.1:8500)",
    )
    services.set_defaults(run=_services)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
