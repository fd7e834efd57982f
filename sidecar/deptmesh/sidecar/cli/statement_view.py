"""What `deptmesh bill` prints: statements as a table, CSV or JSON, exact and deterministic.

Money is the ledger's (units + nanos) written as decimal strings
(deptmesh.sidecar.metering.rate_card.format_nanos), never through a float.
Nothing is added that the statements do not hold: a closed month's statements
print the same bytes every time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from deptmesh.common.v1 import money_pb2
from deptmesh.metering.v1 import metering_pb2
from deptmesh.sidecar.metering.rate_card import NANOS, format_nanos

__all__ = ["FORMATS", "money_text", "render_statements"]

FORMATS = ("table", "csv", "json")
_CSV_HEADER: tuple[str, ...] = ("department", "month", "closed", "rate_card", "currency", "kind")
_CSV_HEADER += ("callee", "method", "tier", "units", "unit_price", "amount")
_NUMERIC = {3, 4, 5}  # UNITS, UNIT PRICE, AMOUNT: aligned right


def money_text(money: money_pb2.Money) -> str:
    """An amount as a decimal string: "25.00", "0.0005"."""
    return format_nanos(money.units * NANOS + money.nanos)


def _timestamp(statement: metering_pb2.Statement) -> str:
    if not statement.HasField("generate_time"):
        return ""
    return str(statement.generate_time.ToJsonString())


def _status(statement: metering_pb2.Statement) -> str:
    return "closed" if statement.closed else "month to date"


def render_statements(statements: Sequence[metering_pb2.Statement], format: str) -> str:
    """The statements in `format` (one of FORMATS), ending with a newline."""
    if format == "json":
        data = {"statements": [_json_statement(s) for s in statements]}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if format == "csv":
        return _csv(statements)
    return "\n".join(_table(s) for s in statements)


def _json_statement(statement: metering_pb2.Statement) -> dict[str, Any]:
    return {
        "department": statement.department,
        "month": statement.month,
        "closed": statement.closed,
        "status": _status(statement),
        "rate_card": statement.rate_card,
        "currency": statement.total.currency_code,
        "line_items": [
            {
                "callee": item.callee,
                "method": item.method,
                "tier": item.tier,
                "units": item.units,
                "unit_price": money_text(item.unit_price),
                "amount": money_text(item.amount),
            }
            for item in statement.line_items
        ],
        "subscriptions": [
            {"callee": s.callee, "amount": money_text(s.amount)} for s in statement.subscriptions
        ],
        "free_units": statement.free_units,
        "total": money_text(statement.total),
        "generate_time": _timestamp(statement),
    }


def _csv(statements: Sequence[metering_pb2.Statement]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_HEADER)
    for s in statements:
        head = (s.department, s.month, str(s.closed).lower(), s.rate_card, s.total.currency_code)
        for item in s.line_items:
            price, amount = money_text(item.unit_price), money_text(item.amount)
            writer.writerow(
                (*head, "usage", item.callee, item.method, item.tier, item.units, price, amount)
            )
        for sub in s.subscriptions:
            amount = money_text(sub.amount)
            writer.writerow((*head, "subscription", sub.callee, "", "", "", "", amount))
        writer.writerow((*head, "free_units", "", "", "", s.free_units, "", "0.00"))
        writer.writerow((*head, "total", "", "", "", "", "", money_text(s.total)))
    return out.getvalue()


def _table(statement: metering_pb2.Statement) -> str:
    currency = statement.total.currency_code
    title = (
        f"statement of {statement.department} for {statement.month}"
        f" ({'closed: final' if statement.closed else 'month to date: not final'}),"
        f" rate card {statement.rate_card or '-'}"
    )
    produced = _timestamp(statement)
    rows: list[tuple[str, ...]] = [
        ("CALLEE", "METHOD", "TIER", "UNITS", "UNIT PRICE", f"AMOUNT {currency}".rstrip())
    ]
    for item in statement.line_items:
        rows.append(
            (
                item.callee,
                item.method,
                item.tier,
                str(item.units),
                money_text(item.unit_price),
                money_text(item.amount),
            )
        )
    for sub in statement.subscriptions:
        rows.append((sub.callee, "subscription (monthly)", "", "", "", money_text(sub.amount)))
    if statement.free_units:
        rows.append(("", "free allowance, not charged", "", str(statement.free_units), "", "0.00"))
    rows.append(("TOTAL", "", "", "", "", money_text(statement.total)))
    lines = [title + (f", produced {produced}" if produced else ""), *_aligned(rows)]
    return "\n".join(lines) + "\n"


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if column in _NUMERIC else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
