"""`deptmesh usage [--department D] [--since 1h]`: who consumed what of whom, now.

Per caller and callee, from the usage ledger's QueryUsage (asked as --as,
default `platform`): calls, cost units, errors, throttled and denied calls
over the last --since. Then each caller's quota headroom: its tier's rate
(the quota policy in Consul KV, deptmesh.sidecar.quotas.policy) against its
rate over the last RECENT_SECONDS, per bucket it draws on (a method with a
tier of its own has its own). Rates are service-wide, as the tiers are.

Exit status as `deptmesh bill`'s.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.metering.v1 import metering_pb2
from deptmesh.registry.acl import PLATFORM_IDENTITY
from deptmesh.registry.protocol import RegistryError
from deptmesh.sidecar.cli.acting_as import (
    CommandRefused,
    add_consul_arguments,
    bad_invocation,
    consul_access,
)
from deptmesh.sidecar.cli.ledger_client import Ledger, asked, departments_to_ask, open_ledger
from deptmesh.sidecar.cli.tables import Row, table
from deptmesh.sidecar.quotas.policy import QuotaPolicy, parse_quota_policy
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY

__all__ = ["RECENT_SECONDS", "add_usage_command", "headroom_rows", "since_of", "usage_rows"]

# "Recent" for the headroom: long enough to span what the sidecars have shipped.
RECENT_SECONDS = 300
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_SINCE = timedelta(days=400)  # the ledger's longest range


def since_of(text: str) -> timedelta:
    """90s, 30m, 1h, 7d as a duration; ValueError otherwise."""
    found = _DURATION.fullmatch(text)
    if found is None or int(found.group(1)) == 0:
        raise ValueError(f"--since {text!r} is not a duration like 90s, 30m, 1h or 7d")
    since = timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])
    if since > _MAX_SINCE:
        raise ValueError(f"--since {text!r} is longer than the ledger keeps ranges (400 days)")
    return since


Summaries = dict[tuple[str, str, str], metering_pb2.UsageSummary]


def usage_rows(usage: Summaries) -> list[Row]:
    """Per (caller, callee): calls, units, errors, throttled, denied, summed over methods."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 5)
    for (caller, callee, _), summary in usage.items():
        total = totals[(caller, callee)]
        counts = (summary.calls, summary.cost_units, summary.errors)
        for index, count in enumerate((*counts, summary.throttled, summary.denied)):
            total[index] += count
    rows: list[Row] = [("CALLER", "CALLEE", "CALLS", "UNITS", "ERRORS", "THROTTLED", "DENIED")]
    for (caller, callee), total in sorted(totals.items()):
        rows.append((caller, callee, *map(str, total)))
    return rows


def headroom_rows(recent: Summaries, policy: QuotaPolicy, seconds: float) -> list[Row]:
    """Per (caller, callee, bucket): the tier's rate, the recent rate, and what is left."""
    units: dict[tuple[str, str, str], int] = defaultdict(int)
    tiers = {}
    for (caller, callee, method), summary in recent.items():
        limits = policy.limits(callee, caller, method)
        key = (caller, callee, limits.bucket_method or "*")
        units[key] += summary.cost_units
        tiers[key] = limits.tier
    rows: list[Row] = [("CALLER", "CALLEE", "BUCKET", "TIER", "RATE/S", "RECENT/S", "HEADROOM")]
    for key, used in sorted(units.items()):
        tier, rate = tiers[key], used / seconds
        left = max(0.0, 1 - rate / tier.rate)
        mode = " (shadow)" if tier.shadow else ""
        rows.append((*key, tier.name + mode, f"{tier.rate:g}", f"{rate:.2f}", f"{left:.0%}"))
    return rows


def add_usage_command(commands: Any) -> None:
    """Adds `usage` to the `deptmesh` command's subparsers."""
    usage = commands.add_parser(
        "usage",
        help="calls, units, errors and throttles per caller and callee, and quota headroom",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    usage.set_defaults(run=_run)
    usage.add_argument("--department", help="one department, as a caller or a callee")
    usage.add_argument("--since", default="1h", help="how far back: 90s, 30m, 1h, 7d (default 1h)")
    usage.add_argument(
        "--as",
        dest="identity",
        default=PLATFORM_IDENTITY,
        metavar="IDENTITY",
        help="the identity to ask the ledger as (default platform)",
    )
    usage.add_argument("--timeout", type=float, default=10.0, help="seconds per query")
    add_consul_arguments(usage)


def _run(args: argparse.Namespace) -> int:
    try:
        print(_usage(args), end="")
    except CommandRefused as refusal:
        first, *details = str(refusal).splitlines()
        print(f"deptmesh usage: {first}", *details, sep="\n", file=sys.stderr)
        return refusal.status
    return 0


def _query(ledger: Ledger, departments: Iterable[str], start: datetime, end: datetime) -> Summaries:
    """Every department's usage in [start, end); a (caller, callee, method) seen from both
    ends counted once."""
    found: Summaries = {}
    for department in departments:
        request = metering_pb2.QueryUsageRequest(
            department=department, start_time=_stamp(start), end_time=_stamp(end)
        )
        reply = asked(ledger.stub.QueryUsage, request, ledger.timeout, f"{department}'s usage")
        for summary in reply.usage:
            found[(summary.caller, summary.callee, summary.method)] = summary
    return found


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _usage(args: argparse.Namespace) -> str:
    try:
        since = since_of(args.since)
    except ValueError as error:
        raise bad_invocation(str(error)) from None
    now = datetime.now(UTC)
    access = consul_access(args.identity, args.consul_address, args.consul_token_file)
    with ExitStack() as opened:
        ledger = open_ledger(args.identity, access, args.timeout, opened)
        departments = departments_to_ask(ledger, args.identity, args.department)
        usage = _query(ledger, departments, now - since, now)
        recent = _query(ledger, departments, now - timedelta(seconds=RECENT_SECONDS), now)
        try:
            _, document = ledger.registry.kv_entry(QUOTA_POLICY_KEY)
        except RegistryError as error:
            raise CommandRefused(f"reading the quota policy: {error}", 1) from None
    rows = usage_rows(usage)
    out = [f"usage since {(now - since).isoformat(timespec='seconds')}"]
    out.append(table(rows) if len(rows) > 1 else "no calls")
    out.append(f"\nquota headroom over the last {RECENT_SECONDS // 60} minutes")
    if document is None:
        out.append(f"no quota policy at {QUOTA_POLICY_KEY}: nobody is limited")
    else:
        try:
            policy = parse_quota_policy(document)
        except ValueError as error:
            raise CommandRefused(f"the quota policy is invalid: {error}", 1) from None
        headroom = headroom_rows(recent, policy, RECENT_SECONDS)
        out.append(table(headroom) if len(headroom) > 1 else "no calls")
    return "\n".join(out) + "\n"
