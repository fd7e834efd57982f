"""A known statement, for the tests of `deptmesh bill`'s rendering and command."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.common.v1.money_pb2 import Money
from deptmesh.metering.v1 import metering_pb2

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"


def eur(nanos: int) -> Money:
    return Money(currency_code="EUR", units=nanos // 10**9, nanos=nanos % 10**9)


def reimbursement_statement(*, closed: bool = True) -> metering_pb2.Statement:
    """reimbursement's November: finance tiered per method, hr, a subscription, free units."""
    produced = Timestamp()
    produced.FromDatetime(datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC))
    return metering_pb2.Statement(
        department="reimbursement",
        month="2026-11",
        closed=closed,
        rate_card="2026-11 7a47d46853dd",
        line_items=[
            metering_pb2.LineItem(
                callee="finance",
                method="*",
                tier="all units",
                units=6,
                unit_price=eur(2_000_000),
                amount=eur(12_000_000),
            ),
            metering_pb2.LineItem(
                callee="finance",
                method=PAYOUT,
                tier="all units",
                units=1,
                unit_price=eur(50_000_000),
                amount=eur(50_000_000),
            ),
            metering_pb2.LineItem(
                callee="hr",
                method="*",
                tier="first 10k",
                units=3,
                unit_price=eur(1_000_000),
                amount=eur(3_000_000),
            ),
        ],
        subscriptions=[metering_pb2.SubscriptionCharge(callee="finance", amount=eur(25 * 10**9))],
        free_units=5,
        total=eur(25_065_000_000),
        generate_time=produced,
    )
