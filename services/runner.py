"""Runs one department service as a process.

`python -m services.<dept> --port 0 --db PATH` binds, prints the bound address
on one line (`<name> serving on HOST:PORT`), serves until SIGTERM or SIGINT,
then drains: NOT_SERVING, no new calls, in-flight calls finish within the grace
period, and the process exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from sidecar.logs import configure_logging
from sidecar.server import Server


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """What every service is started with; services add their own flags."""

    host: str
    port: int
    db: Path
    seed_demo_data: bool
    grace_seconds: float
    extra: argparse.Namespace


@dataclass(frozen=True, slots=True)
class RunningService:
    """A built service: its server and what to close once the server has stopped."""

    server: Server
    close: Callable[[], None]


Builder = Callable[[ServiceOptions], RunningService]
AddArguments = Callable[[argparse.ArgumentParser], None]


def parse_options(
    name: str, argv: Sequence[str] | None, add_arguments: AddArguments | None = None
) -> ServiceOptions:
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--db", type=Path, required=True, help="SQLite database file")
    parser.add_argument(
        "--seed-demo-data", action="store_true", help="load demo data into an empty database"
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=10.0,
        help="how long in-flight calls may run after SIGTERM",
    )
    parser.add_argument("--log-format", choices=["json", "console"], default="json")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0 to 65535, got {args.port}")
    configure_logging(args.log_format)
    return ServiceOptions(
        host=args.host,
        port=args.port,
        db=args.db,
        seed_demo_data=args.seed_demo_data,
        grace_seconds=args.grace_seconds,
        extra=args,
    )


def run(name: str, options: ServiceOptions, build: Builder) -> int:
    log = structlog.get_logger("deptmesh.service").bind(service=name)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    service = build(options)
    port = service.server.start(f"{options.host}:{options.port}")
    address = f"{options.host}:{port}"
    sys.stdout.write(f"{name} serving on {address}\n")
    sys.stdout.flush()
    log.info("serving", address=address, db=str(options.db))

    stop_requested.wait()
    service.server.stop(options.grace_seconds)
    service.close()
    log.info("stopped")
    return 0
