"""`deptmesh bill --month 2026-11|current [--department D] [--format table|csv|json]`: what
each paying department owes for a month, line by line, from the usage ledger.

The statements come from the `metering` department's GetStatement, asked as a
mesh identity (--as, default `platform`, whose token the local mesh keeps):
line items per (callee, method, tier) with units, unit price and amount;
subscriptions; free units; the total; which rate card priced it. A closed
month's statement is final, and printed the same, byte for byte, every time;
the current month is month to date. Without --department, `platform` gets
every department's statement (departments that used nothing are left out)
and any other identity its own.

Exit status: 0 printed; 1 the ledger or the mesh said no (a department it
may not read, no rate card for the month, Consul unreachable); 2 the command
line is wrong (a month that is not YYYY-MM, a file that cannot be read).
"""

from __future__ import annotations

import argparse
import re
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from deptmesh.metering.v1 import metering_pb2
from deptmesh.registry.acl import PLATFORM_IDENTITY
from deptmesh.sidecar.cli.acting_as import (
    CommandRefused,
    add_consul_arguments,
    bad_invocation,
    consul_access,
)
from deptmesh.sidecar.cli.ledger_client import asked, departments_to_ask, open_ledger
from deptmesh.sidecar.cli.statement_view import FORMATS, render_statements

__all__ = ["add_bill_command", "month_of"]

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def month_of(text: str, now: datetime) -> str:
    """`current` (the month of `now`, UTC) or a YYYY-MM month; ValueError otherwise."""
    if text == "current":
        return now.astimezone(UTC).strftime("%Y-%m")
    if not _MONTH.fullmatch(text):
        raise ValueError(f"--month {text!r} is not YYYY-MM (for example 2026-11) or current")
    return text


def _used(statement: metering_pb2.Statement) -> bool:
    return bool(statement.line_items or statement.subscriptions or statement.free_units)


def add_bill_command(commands: Any) -> None:
    """Adds `bill` to the `deptmesh` command's subparsers."""
    bill = commands.add_parser(
        "bill",
        help="print each department's statement for a month, from the usage ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bill.set_defaults(run=_run)
    bill.add_argument(
        "--month",
        default="current",
        help="YYYY-MM, or current for month to date (default current)",
    )
    bill.add_argument("--department", help="the paying department (default: see above)")
    bill.add_argument("--format", choices=FORMATS, default="table", help="default table")
    bill.add_argument(
        "--as",
        dest="identity",
        default=PLATFORM_IDENTITY,
        metavar="IDENTITY",
        help="the identity to ask the ledger as (default platform, which reads every"
        " department's statement)",
    )
    bill.add_argument("--timeout", type=float, default=10.0, help="seconds per statement")
    add_consul_arguments(bill)


def _run(args: argparse.Namespace) -> int:
    try:
        print(_bill(args), end="")
    except CommandRefused as refusal:
        first, *details = str(refusal).splitlines()
        print(f"deptmesh bill: {first}", *details, sep="\n", file=sys.stderr)
        return refusal.status
    return 0


def _bill(args: argparse.Namespace) -> str:
    try:
        month = month_of(args.month, datetime.now(UTC))
    except ValueError as error:
        raise bad_invocation(str(error)) from None
    access = consul_access(args.identity, args.consul_address, args.consul_token_file)
    with ExitStack() as opened:
        ledger = open_ledger(args.identity, access, args.timeout, opened)
        departments = departments_to_ask(ledger, args.identity, args.department)
        statements = [
            asked(
                ledger.stub.GetStatement,
                metering_pb2.GetStatementRequest(department=department, month=month),
                ledger.timeout,
                f"the statement of {department} for {month}",
            ).statement
            for department in departments
        ]
    if len(departments) > 1:
        statements = [s for s in statements if _used(s)]
        if not statements:
            return f"no department used another's API in {month}\n"
    return render_statements(statements, args.format)
