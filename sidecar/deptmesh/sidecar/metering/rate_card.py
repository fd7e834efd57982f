"""The rate card: what a department's API costs its callers, as the policy file states it.

Prices are per cost unit (a call's units are its method's declared
`quota_cost`), in nanos of the card's currency (exact: never a float), with
volume tiers within a month: the first N units of a (callee, method) at one
price, the next at another. A method may have a price of its own; otherwise
its callee's price applies, and a callee with no price is free. A callee may
charge a monthly subscription to every department that used it in the month;
each paying department gets `free_units` units free a month, taken from its
first units in (callee, method) order.

A policy file holds dated cards; the card for a month is the latest whose
`effective_month` is not after it, so a change takes effect from the month it
names. This module is the model only: the policy file's section is parsed
into it (`parse_rate_cards`), and the usage ledger prices with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RATE_CARDS_KEY", "Price", "PriceTier", "RateCard", "RateCards"]

# Where `deptmesh policy apply` writes the cards (JSON) for the ledger to read.
RATE_CARDS_KEY = "deptmesh/policy/rate_cards"


@dataclass(frozen=True)
class PriceTier:
    """Units up to `up_to_units` in the month (None: all the rest) at one price."""

    name: str
    up_to_units: int | None
    unit_price_nanos: int


@dataclass(frozen=True)
class Price:
    """The tiers of one price, in order; the last one has no upper bound."""

    tiers: tuple[PriceTier, ...]


@dataclass(frozen=True)
class RateCard:
    effective_month: str  # YYYY-MM
    currency: str  # ISO 4217
    digest: str  # hex SHA-256 of the card's canonical JSON: which card priced a statement
    services: Mapping[str, Price] = field(default_factory=dict)  # callee -> price
    methods: Mapping[str, Price] = field(default_factory=dict)  # full method path -> price
    subscriptions_nanos: Mapping[str, int] = field(default_factory=dict)  # callee -> monthly
    free_units: int = 0

    @property
    def label(self) -> str:
        """How a statement names the card: its month and the start of its digest."""
        return f"{self.effective_month} {self.digest[:12]}"

    def price_of(self, callee: str, method: str) -> Price | None:
        return self.methods.get(method) or self.services.get(callee)


@dataclass(frozen=True)
class RateCards:
    """Every dated card of the policy, oldest first."""

    cards: tuple[RateCard, ...] = ()

    def for_month(self, month: str) -> RateCard | None:
        """The card in force in `month` (YYYY-MM), None before the first one."""
        in_force = [card for card in self.cards if card.effective_month <= month]
        return in_force[-1] if in_force else None
