"""The `deptmesh` command: platform tools, one subcommand each.

Other installed packages add subcommands through the `deptmesh.commands` entry
point group: each entry point is a function given argparse's subparsers, which
adds its command (deptmesh.services adds `demo` this way).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deptmesh.sidecar.cli.bill import add_bill_command
from deptmesh.sidecar.cli.call import add_call_command
from deptmesh.sidecar.cli.certificate import add_certificate_command
from deptmesh.sidecar.cli.describe import add_describe_command
from deptmesh.sidecar.cli.monitor import add_alerts_command, add_monitor_command
from deptmesh.sidecar.cli.policy import add_policy_command
from deptmesh.sidecar.cli.tables import table
from deptmesh.sidecar.cli.usage import add_usage_command
from deptmesh.sidecar.flags import OneLineParser, host_port

if TYPE_CHECKING:
    from deptmesh.registry.consul import ConsulRegistry

COMMANDS_GROUP = "deptmesh.commands"
# The business key `deptmesh trace --claim ID` stands for: reimbursement's claims, as
# its contract declares them (a shortcut for on-call; the library knows no key).
_CLAIM_KEY = "claim"


def _consul(args: argparse.Namespace) -> ConsulRegistry:
    """The registry the Consul subcommands ask, with the token `args` give (ValueError
    naming a token file that cannot be used)."""
    from deptmesh.registry.consul import ConsulRegistry

    return ConsulRegistry(args.consul_address, token_file=args.consul_token_file)


def _services(args: argparse.Namespace) -> int:
    from deptmesh.registry.protocol import RegistryError

    try:
        registry = _consul(args)
        instances = registry.services()
    except (ValueError, RegistryError) as error:
        print(f"deptmesh services: {error}", file=sys.stderr)
        return 1
    if not instances and not registry.has_token:
        # Consul shows an anonymous request nothing at all, which looks like an empty mesh.
        print(
            "deptmesh services: no Consul token was given, and Consul lists nothing without"
            " one: give --consul-token-file (or $CONSUL_HTTP_TOKEN_FILE)",
            file=sys.stderr,
        )
    rows = [("SERVICE", "INSTANCE", "ADDRESS", "HEALTH", "CONTRACT")]
    rows += [
        (i.service, i.instance_id, i.endpoint, i.health.value, i.contract_version or "-")
        for i in instances
    ]
    print(table(rows))
    return 0


def _quota(args: argparse.Namespace) -> int:
    from deptmesh.registry.protocol import RegistryError
    from deptmesh.sidecar.cli.quota_report import policy_rows, usage_rows
    from deptmesh.sidecar.metering.report import USAGE_PREFIX
    from deptmesh.sidecar.quotas.policy import parse_quota_policy
    from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY

    try:
        registry = _consul(args)
        _, document = registry.kv_value(QUOTA_POLICY_KEY, 0, 0)
        reports = registry.kv_values(USAGE_PREFIX)
    except (ValueError, RegistryError) as error:
        print(f"deptmesh quota: {error}", file=sys.stderr)
        return 1
    if document is None:
        print(f"no quota policy at {QUOTA_POLICY_KEY}: nobody is limited")
    else:
        try:
            tiers, assignments = policy_rows(parse_quota_policy(document))
        except ValueError as error:
            print(f"deptmesh quota: the policy at {QUOTA_POLICY_KEY} is invalid: {error}")
            return 1
        print(f"quota policy ({QUOTA_POLICY_KEY})\n{table(tiers)}\n\n{table(assignments)}")
    rows = usage_rows(reports.values())
    print(f"\nusage per caller (from {len(reports)} instance reports)")
    print(table(rows) if len(rows) > 1 else "no calls yet")
    return 0


def _trace(args: argparse.Namespace) -> int:
    from deptmesh.sidecar.cli.trace_view import render_trace
    from deptmesh.sidecar.errors import TraceStoreError
    from deptmesh.sidecar.tracing.store import TraceStore, default_store_path
    from deptmesh.sidecar.tracing.tags import is_key_name

    path = args.store or default_store_path()
    if args.trace_id is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", args.trace_id):
        print(
            f"deptmesh trace: {args.trace_id!r} is not a trace id (32 hex digits)", file=sys.stderr
        )
        return 1
    tag = args.tag if args.claim is None else f"{_CLAIM_KEY}={args.claim}"
    key, _, value = (tag or "").partition("=")
    if tag is not None and not (is_key_name(key) and value):
        print(
            f"deptmesh trace: --tag takes NAME=VALUE (a key name of letters, digits, _ . -"
            f" and a value), got {tag!r}",
            file=sys.stderr,
        )
        return 1
    try:
        with TraceStore(path) as store:
            if args.last:
                last = store.last_trace_id()
                trace_ids, missing = [] if last is None else [last], f"no traces in {path}"
            elif tag is not None:
                trace_ids = store.trace_ids_tagged(key, value)
                missing = f"no trace of {key} {value!r} in {path}"
            else:
                trace_ids, missing = [args.trace_id], f"no trace {args.trace_id} in {path}"
            traces = [spans for spans in map(store.spans_of, trace_ids) if spans]
    except TraceStoreError as error:
        print(f"deptmesh trace: {error}", file=sys.stderr)
        return 1
    if not traces:
        print(f"deptmesh trace: {missing}", file=sys.stderr)
        return 1
    # Fitted to the terminal (COLUMNS, else 80 when it is not one); --wide shows all.
    width = None if args.wide else shutil.get_terminal_size().columns
    print("\n\n".join(render_trace(spans, width=width) for spans in traces))
    return 0


def _version(_: argparse.Namespace) -> int:
    print(f"deptmesh {version('deptmesh')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="deptmesh", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the installed version").set_defaults(run=_version)
    # Commands other packages add (the demo, from deptmesh.services): the library
    # itself never imports what is built on it.
    for entry_point in entry_points(group=COMMANDS_GROUP):
        add_command: Callable[[Any], None] = entry_point.load()
        add_command(commands)
    services = commands.add_parser(
        "services", help="list services, instances, health and contract version from Consul"
    )
    services.set_defaults(run=_services)
    quota = commands.add_parser("quota", help="show the quota policy and live usage per caller")
    quota.set_defaults(run=_quota)
    for command, needs in (
        (services, "catalog and health read: the monitoring token will do"),
        (quota, "reading deptmesh/policy/ and deptmesh/usage/: the platform's token"),
    ):
        command.add_argument(
            "--consul-address",
            type=host_port,
            default=os.environ.get("CONSUL_HTTP_ADDR") or "127.0.0.1:8500",
            help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR or 127.0.0.1:8500)",
        )
        command.add_argument(
            "--consul-token-file",
            type=Path,
            help=f"the file holding the Consul ACL token to ask with ({needs}; default"
            " $CONSUL_HTTP_TOKEN_FILE, else the token in $CONSUL_HTTP_TOKEN)",
        )
    add_call_command(commands)
    add_describe_command(commands)
    add_certificate_command(commands)
    add_policy_command(commands)
    add_bill_command(commands)
    add_usage_command(commands)
    add_monitor_command(commands)
    add_alerts_command(commands)
    trace = commands.add_parser(
        "trace", help="show one request across departments as a waterfall, from the trace store"
    )
    trace.set_defaults(run=_trace)
    which = trace.add_mutually_exclusive_group(required=True)
    which.add_argument("trace_id", nargs="?", help="the trace to show (32 hex digits)")
    which.add_argument("--last", action="store_true", help="the trace that started last")
    which.add_argument(
        "--tag",
        metavar="NAME=VALUE",
        help="every trace about this value of a business key, for example claim=clm_4d2e",
    )
    which.add_argument("--claim", metavar="CLAIM_ID", help="short for --tag claim=CLAIM_ID")
    trace.add_argument(
        "--wide",
        action="store_true",
        help="show methods and peers (SPIFFE IDs) in full, however wide the terminal",
    )
    trace.add_argument(
        "--store",
        type=Path,
        help="the trace store (default $DEPTMESH_TRACE_STORE, else"
        " $XDG_STATE_HOME/deptmesh/traces.sqlite, else ~/.local/state/deptmesh/traces.sqlite)",
    )
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
