"""A month's usage priced with a rate card: the Statement, computed exactly, from nothing else.

Pure: no database, no clock, no grpc. The input is one paying department's
billable units (cost units of calls that ended OK) per (callee, method) for
one month; the output is its statement, every amount in nanos of the card's
currency (exact integers, never a float).

How a card prices (deptmesh.sidecar.metering.rate_card):

- A method with a price of its own is a line of its own (its full method name);
  the other methods of a callee with a price share the callee's price as one
  line, method "*": volume tiers count the callee as a whole. Usage of a callee
  with no price is free and gets no line.
- Volume tiers within the month: a line's units fill its tiers in order; a tier
  holds the units up to its `up_to_units` (counted from the month's first unit),
  the last tier all the rest.
- The free allowance covers the paying department's first priced units, line by
  line in (callee, method) order; those units still count toward the tiers (they
  are the first ones), but are not charged. `free_units` says how many it covered.
- A callee's monthly subscription is charged once to every department that used
  it in the month (billable units > 0), priced or not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.metering.v1 import metering_pb2 as pb
from deptmesh.services.money import Amount
from deptmesh.sidecar.metering.rate_card import Price, RateCard

__all__ = ["WHOLE_CALLEE", "BillableUsage", "price_statement"]

# LineItem.method when the callee's price covers the method.
WHOLE_CALLEE = "*"

# (callee, full method name) -> billable cost units in the month.
BillableUsage = Mapping[tuple[str, str], int]


@dataclass(frozen=True, slots=True)
class _Line:
    callee: str
    method: str  # a full method name, or WHOLE_CALLEE
    price: Price
    units: int


def _lines(usage: BillableUsage, card: RateCard) -> list[_Line]:
    """The priced lines, in (callee, method) order; units of one line added up."""
    units: dict[tuple[str, str], int] = {}
    prices: dict[tuple[str, str], Price] = {}
    for (callee, method), used in usage.items():
        if used <= 0:
            continue
        own = card.methods.get(method)
        price = own if own is not None else card.services.get(callee)
        if price is None:
            continue  # a callee with no price is free
        key = (callee, method if own is not None else WHOLE_CALLEE)
        units[key] = units.get(key, 0) + used
        prices[key] = price
    return [_Line(c, m, prices[(c, m)], units[(c, m)]) for c, m in sorted(units)]


def _tiered(price: Price, first: int, last: int) -> Iterator[tuple[str, int, int]]:
    """(tier name, units, unit price in nanos) for the units at positions [first, last)
    of the month's volume, tier by tier; tiers holding none of them are left out."""
    floor = 0
    for tier in price.tiers:
        ceiling = last if tier.up_to_units is None else tier.up_to_units
        units = min(ceiling, last) - max(floor, first)
        if units > 0:
            yield tier.name, units, tier.unit_price_nanos
        if tier.up_to_units is None or ceiling >= last:
            return
        floor = ceiling


def price_statement(
    department: str,
    month: str,
    usage: BillableUsage,
    card: RateCard,
    *,
    closed: bool,
    generate_time: Timestamp,
) -> pb.Statement:
    """`department`'s statement for `month` (YYYY-MM): `usage` priced with `card`."""
    currency = card.currency

    def money(nanos: int) -> Amount:
        return Amount(currency, nanos)

    free_left = card.free_units
    total = 0
    items: list[pb.LineItem] = []
    for line in _lines(usage, card):
        free = min(free_left, line.units)
        free_left -= free
        for tier, units, unit_price in _tiered(line.price, free, line.units):
            amount = units * unit_price
            total += amount
            items.append(
                pb.LineItem(
                    callee=line.callee,
                    method=line.method,
                    tier=tier,
                    units=units,
                    unit_price=money(unit_price).to_proto(),
                    amount=money(amount).to_proto(),
                )
            )
    used = sorted({callee for (callee, _), units in usage.items() if units > 0})
    subscriptions: list[pb.SubscriptionCharge] = []
    for callee in used:
        charge = card.subscriptions_nanos.get(callee)
        if charge:
            total += charge
            subscriptions.append(
                pb.SubscriptionCharge(callee=callee, amount=money(charge).to_proto())
            )
    return pb.Statement(
        department=department,
        month=month,
        closed=closed,
        rate_card=card.label,
        line_items=items,
        subscriptions=subscriptions,
        free_units=card.free_units - free_left,
        total=money(total).to_proto(),
        generate_time=generate_time,
    )
