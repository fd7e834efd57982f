"""`deptmesh portal`: its flags, and running it (the heavy imports wait until it runs, so
that `deptmesh --help` stays quick)."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from deptmesh.registry.acl import PLATFORM_IDENTITY
from deptmesh.sidecar.cli.acting_as import add_consul_arguments

__all__ = ["DEFAULT_LISTEN", "add_arguments", "listen_address", "run"]

DEFAULT_LISTEN = "127.0.0.1:0"
_LISTEN = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})")


def listen_address(value: str) -> tuple[str, int]:
    """HOST:PORT (port 0: any free port) as (host, port); argparse's error otherwise."""
    found = _LISTEN.fullmatch(value)
    if found is None or int(found["port"]) > 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not HOST:PORT (for example {DEFAULT_LISTEN})"
        )
    return found["host"].strip("[]"), int(found["port"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=listen_address(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"where to serve (default {DEFAULT_LISTEN}: this machine only, a free port)",
    )
    parser.add_argument(
        "--as",
        dest="identity",
        default=PLATFORM_IDENTITY,
        metavar="IDENTITY",
        help="the identity to read the catalog, the ledger and the policy as (default platform)",
    )
    parser.add_argument(
        "--trace-store",
        type=Path,
        help="the trace store to read (default $DEPTMESH_TRACE_STORE, else the local one)",
    )
    parser.add_argument(
        "--alertmanager",
        metavar="URL",
        help="Alertmanager's URL (default the local mesh's, when it runs one)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="DIR",
        help="serve this built API reference (default: build it into a temporary folder)",
    )
    add_consul_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serves until interrupted; 0 then, 2 when the command line is wrong."""
    from deptmesh.services.company_policy import company_policy
    from deptmesh.services.portal.app import build_app
    from deptmesh.services.portal.server import serve
    from deptmesh.services.portal.sources import local_sources
    from deptmesh.sidecar.reference import build_site

    sources = local_sources(
        identity=args.identity,
        consul_address=args.consul_address,
        token_file=args.consul_token_file,
        trace_store=args.trace_store,
        alertmanager_url=args.alertmanager,
    )
    host, port = args.listen
    with tempfile.TemporaryDirectory(prefix="deptmesh-portal-reference-") as built:
        reference = args.reference
        if reference is None:
            reference = Path(built)
            build_site(reference, policy=company_policy())
        elif not (reference / "index.html").is_file():
            sys.stderr.write(f"deptmesh portal: {reference} holds no index.html\n")
            return 2
        try:
            serve(build_app(sources, reference), host, port)
        except OSError as error:
            sys.stderr.write(f"deptmesh portal: cannot listen on {host}:{port}: {error}\n")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deptmesh.services.portal")
    add_arguments(parser)
    return run(parser.parse_args(argv))
