"""The host's flags, parsed once into frozen options.

Every department gets the same flags (`python -m deptmesh.services.hr --help`
lists them) plus its own (Department.add_flags). Environment variables give
some defaults and are read here, once. Parsing has no side effects: nothing is
opened, nothing is asked of Consul; a bad flag exits with status 2 and one
line naming it (`--help` prints the usage).
"""

from __future__ import annotations

import argparse
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, NoReturn

from deptmesh.sidecar.flags import OneLineParser, host_port
from deptmesh.sidecar.host.department import Department
from deptmesh.sidecar.tracing import Exporter

__all__ = ["HostOptions", "default_usage_spool", "parse_options", "usage_error"]


@dataclass(frozen=True, slots=True)
class HostOptions:
    """How one department process runs, as its flags say."""

    host: str
    port: int
    # A SQLite file (Path), or a PostgreSQL server's postgresql:// URL (str).
    db: Path | str
    seed_demo_data: bool
    # How long in-flight calls may run once the server stops taking new ones.
    grace_seconds: float
    # How long a draining instance keeps serving after leaving the registry,
    # while its callers' watches notice.
    drain_seconds: float
    # The Consul agent; None runs unregistered (plaintext, development only).
    consul_address: str | None
    # The file holding this department's Consul ACL token; None: $CONSUL_HTTP_TOKEN_FILE,
    # else $CONSUL_HTTP_TOKEN, read by the registry. The token itself is never an option.
    consul_token_file: Path | None
    # Without Consul: the access policy and quota policy files, if any.
    policy_file: Path | None
    quota_policy_file: Path | None
    log_format: Literal["json", "console"]
    # Where log lines and access-log events go; None is standard error.
    log_file: Path | None
    # The Prometheus endpoint's port, 0 for a free one; None opens no endpoint
    # (for a department hosted inside a test, whose counts are read in place).
    metrics_port: int | None
    trace_exporter: Exporter
    trace_store: Path | None
    otlp_endpoint: str
    trace_sample_ratio: float
    # The service usage is reported to through the mesh (the usage ledger); None
    # reports none. By default `metering` with Consul, None without.
    usage_ledger: str | None
    # Where usage waits until the ledger has it; None: beside a SQLite --db, else
    # under $XDG_STATE_HOME/deptmesh (see default_usage_spool).
    usage_spool: Path | None
    # How often usage is flushed to the spool and shipped: what a killed process
    # may lose at most.
    usage_flush_seconds: float
    # The department's own flags (Department.add_flags).
    flags: argparse.Namespace


def _parser(department: Department, prog: str | None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog or department.name, description=department.description or None)
    host = parser.add_argument_group("the host's options (every department has them)")
    host.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    host.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    host.add_argument(
        "--db",
        type=_database,
        required=True,
        help="the department's database: a SQLite file, or postgresql://USER@HOST:PORT/DBNAME"
        " for replicas on several hosts (password from $PGPASSWORD or ~/.pgpass)",
    )
    host.add_argument(
        "--seed-demo-data", action="store_true", help="load demo data into an empty database"
    )
    host.add_argument(
        "--grace-seconds",
        type=float,
        default=10.0,
        help="how long in-flight calls may run after SIGTERM",
    )
    host.add_argument(
        "--drain-seconds",
        type=float,
        default=1.5,
        help="how long to keep serving after leaving the registry, while callers move away",
    )
    host.add_argument(
        "--consul-address",
        type=host_port,
        default=os.environ.get("CONSUL_HTTP_ADDR") or None,
        help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR; none: run unregistered)",
    )
    host.add_argument(
        "--consul-token-file",
        type=Path,
        help="the file holding this department's Consul ACL token (default"
        " $CONSUL_HTTP_TOKEN_FILE, else the token in $CONSUL_HTTP_TOKEN)",
    )
    host.add_argument(
        "--policy-file",
        type=Path,
        help="without Consul: enforce this access policy file, re-read when it changes"
        " (callers are anonymous on a service without Consul)",
    )
    host.add_argument(
        "--quota-policy-file",
        type=Path,
        help="without Consul: enforce this quota policy file (deptmesh.sidecar.quotas.policy"
        " documents it), re-read when it changes",
    )
    host.add_argument("--log-format", choices=["json", "console"], default="json")
    host.add_argument(
        "--log-file",
        type=Path,
        default=os.environ.get("DEPTMESH_LOG_FILE"),
        help="append log lines (one access-log event per call among them) to this file"
        " instead of standard error (default $DEPTMESH_LOG_FILE)",
    )
    host.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="port of the Prometheus endpoint (/metrics); 0 picks a free one, which is"
        " logged and registered in Consul as the instance's metrics_port",
    )
    host.add_argument(
        "--trace-exporter",
        choices=["store", "otlp", "none"],
        default=os.environ.get("DEPTMESH_TRACE_EXPORTER", "store"),
        help="where spans go: the local trace store (default), an OTLP/gRPC collector, or nowhere",
    )
    host.add_argument(
        "--trace-store",
        type=Path,
        default=os.environ.get("DEPTMESH_TRACE_STORE"),
        help="the local trace store file (default $DEPTMESH_TRACE_STORE, else under"
        " $XDG_STATE_HOME/deptmesh)",
    )
    host.add_argument(
        "--otlp-endpoint",
        default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").removeprefix("http://"),
        help="HOST:PORT of the OTLP/gRPC collector (default $OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    host.add_argument(
        "--trace-sample-ratio",
        type=float,
        default=float(os.environ.get("DEPTMESH_TRACE_SAMPLE_RATIO", "1.0")),
        help="share of new traces recorded, 0..1 (a caller's decision is followed)",
    )
    host.add_argument(
        "--usage-ledger",
        metavar="SERVICE",
        help="report usage per minute to this service through the mesh (default: metering"
        " with Consul; 'none' reports none)",
    )
    host.add_argument(
        "--usage-spool",
        type=Path,
        help="where usage waits until the ledger has it, kept across restarts (default:"
        " beside a SQLite --db, DB.usage-spool.sqlite; else under $XDG_STATE_HOME/deptmesh)",
    )
    host.add_argument(
        "--usage-flush-seconds",
        type=float,
        default=2.0,
        help="how often usage is spooled and shipped: what a killed process may lose at most",
    )
    if department.add_flags is not None:
        department.add_flags(parser)
    return parser


def default_usage_spool(
    name: str, db: Path | str, environ: Mapping[str, str] | None = None
) -> Path:
    """Where department `name` spools its usage when --usage-spool does not say: beside a
    SQLite database (hr.db -> hr.usage-spool.sqlite), else
    $XDG_STATE_HOME/deptmesh/usage-spool/<name>.sqlite (~/.local/state without it).
    The same for every start, so that a restarted instance sends what the last one left."""
    if isinstance(db, Path):
        return db.with_name(f"{db.stem}.usage-spool.sqlite")
    env = os.environ if environ is None else environ
    state_home = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "deptmesh" / "usage-spool" / f"{name}.sqlite"


def _database(value: str) -> Path | str:
    """--db: a PostgreSQL URL stays as it is; anything else is a SQLite file's path.

    A URL with a password is refused: command lines are visible to every user of
    the host, and the URL is logged. libpq reads the password from $PGPASSWORD or
    ~/.pgpass instead.
    """
    if not value.startswith(("postgresql://", "postgres://")):
        return Path(value)
    url = urllib.parse.urlsplit(value)
    if url.password is not None or "password" in urllib.parse.parse_qs(url.query):
        raise argparse.ArgumentTypeError(
            "the URL must not hold a password (command lines and logs show it);"
            " give it in $PGPASSWORD or ~/.pgpass"
        )
    return value


# HostOptions' fields are named after the flags' destinations.
_HOST_FLAGS = tuple(field.name for field in fields(HostOptions) if field.name != "flags")


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag, port in (("--port", args.port), ("--metrics-port", args.metrics_port)):
        if not 0 <= port <= 65535:
            parser.error(f"{flag} must be 0 to 65535, got {port}")
    for flag, seconds in (
        ("--grace-seconds", args.grace_seconds),
        ("--drain-seconds", args.drain_seconds),
    ):
        if not seconds >= 0:  # NaN too
            parser.error(f"{flag} must be 0 or more seconds, got {seconds}")
    if args.consul_token_file is not None and not args.consul_address:
        parser.error("--consul-token-file is for Consul: give --consul-address too")
    for flag, value in (
        ("--policy-file", args.policy_file),
        ("--quota-policy-file", args.quota_policy_file),
    ):
        if value is not None and args.consul_address:
            parser.error(
                f"{flag} is for running without Consul; with --consul-address"
                " (or $CONSUL_HTTP_ADDR) the policy comes from Consul"
            )
    if not 0.0 <= args.trace_sample_ratio <= 1.0:
        parser.error(f"--trace-sample-ratio must be within 0..1, got {args.trace_sample_ratio}")
    if not args.usage_flush_seconds > 0:  # NaN too
        parser.error(f"--usage-flush-seconds must be more than 0, got {args.usage_flush_seconds}")
    if args.trace_exporter == "otlp" and not args.otlp_endpoint:
        parser.error("--trace-exporter otlp needs --otlp-endpoint HOST:PORT")


def parse_options(
    department: Department, argv: Sequence[str] | None = None, *, prog: str | None = None
) -> HostOptions:
    """The options `argv` (default: the process's arguments) give `department`.

    A bad flag ends the process with status 2 and a usage message naming `prog`
    (default: the department's name).
    """
    parser = _parser(department, prog)
    parsed = parser.parse_args(argv)
    _check(parser, parsed)
    args = vars(parsed)
    args["consul_address"] = args["consul_address"] or None
    ledger = args["usage_ledger"] or ("metering" if args["consul_address"] else "none")
    args["usage_ledger"] = None if ledger == "none" else ledger
    own = {name: value for name, value in args.items() if name not in _HOST_FLAGS}
    return HostOptions(
        **{name: args[name] for name in _HOST_FLAGS}, flags=argparse.Namespace(**own)
    )


def usage_error(department: Department, message: str, *, prog: str | None = None) -> NoReturn:
    """Ends the process with status 2 and `message`, as a bad flag would."""
    _parser(department, prog).error(message)
