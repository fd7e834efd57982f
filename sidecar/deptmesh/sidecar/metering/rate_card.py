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
names. The policy file's `[[rate_cards]]` entries are parsed into this model
by `parse_rate_cards` (every problem with its key path, for the policy file's
line numbers), and `deptmesh policy apply` writes them to Consul KV at
RATE_CARDS_KEY as `RateCards.to_json()` (the dataclasses as JSON, the way
`dataclasses.asdict` has them), which the usage ledger reads back with
`RateCards.from_json()`. A card's `digest` is the SHA-256 of its
canonical JSON (its prices, not its `retroactive` mark), so a statement names
exactly the prices it was made with.

Amounts in a policy file are decimal strings ("0.0010", "25.00"), converted
to nanos exactly (`nanos_of`); more than nine decimals are refused, and TOML
numbers are refused because a float is not exact. `format_nanos` writes
nanos back as such a string.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FLAT_TIER",
    "NANOS",
    "RATE_CARDS_KEY",
    "Price",
    "PriceTier",
    "RateCard",
    "RateCards",
    "RateCardsInvalid",
    "format_nanos",
    "nanos_of",
    "parse_rate_cards",
]

# Where `deptmesh policy apply` writes the cards (JSON) for the ledger to read.
RATE_CARDS_KEY = "deptmesh/policy/rate_cards"
# The name of the one tier of a price written as a bare `unit_price`.
FLAT_TIER = "all units"

NANOS = 1_000_000_000  # nanos in one unit of a currency
_MAX_NANOS = 2**63 - 1  # what an int64 of the ledger holds
_DECIMAL = re.compile(r"(\d+)(?:\.(\d+))?")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_CURRENCY = re.compile(r"[A-Z]{3}")
_METHOD_PATH = re.compile(
    r"/[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*"
)
_CARD_FIELDS = ("effective_month", "currency", "free_units", "retroactive", "services", "methods")
_PRICE_FIELDS = ("unit_price", "tiers")
_TIER_FIELDS = ("name", "up_to_units", "unit_price")


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
    # Applied although it changes the current or a past month (not part of the digest).
    retroactive: bool = False

    @property
    def label(self) -> str:
        """How a statement names the card: its month and the start of its digest."""
        return f"{self.effective_month} {self.digest[:12]}"

    def price_of(self, callee: str, method: str) -> Price | None:
        return self.methods.get(method) or self.services.get(callee)

    def prices_data(self) -> dict[str, Any]:
        """The card's prices as plain data, keys sorted: what its digest is taken of."""
        return {
            "currency": self.currency,
            "effective_month": self.effective_month,
            "free_units": self.free_units,
            "methods": {path: _price_data(p) for path, p in sorted(self.methods.items())},
            "services": {name: _price_data(p) for name, p in sorted(self.services.items())},
            "subscriptions_nanos": dict(sorted(self.subscriptions_nanos.items())),
        }

    def policy_data(self) -> dict[str, Any]:
        """The card as the policy file writes it (decimal strings, defaults left out);
        `parse_rate_cards` reads it back to an equal card."""
        data: dict[str, Any] = {"effective_month": self.effective_month, "currency": self.currency}
        if self.free_units:
            data["free_units"] = self.free_units
        if self.retroactive:
            data["retroactive"] = True
        services: dict[str, Any] = {}
        for name in sorted(self.services.keys() | self.subscriptions_nanos.keys()):
            entry = _price_policy_data(self.services[name]) if name in self.services else {}
            if name in self.subscriptions_nanos:
                entry["subscription"] = format_nanos(self.subscriptions_nanos[name])
            services[name] = entry
        if services:
            data["services"] = services
        if self.methods:
            data["methods"] = {
                path: _price_policy_data(price) for path, price in sorted(self.methods.items())
            }
        return data


def _price_data(price: Price) -> dict[str, Any]:
    tiers = [
        {"name": t.name, "up_to_units": t.up_to_units, "unit_price_nanos": t.unit_price_nanos}
        for t in price.tiers
    ]
    return {"tiers": tiers}


def _price_policy_data(price: Price) -> dict[str, Any]:
    if len(price.tiers) == 1 and price.tiers[0].name == FLAT_TIER:
        return {"unit_price": format_nanos(price.tiers[0].unit_price_nanos)}
    tiers = []
    for tier in price.tiers:
        entry: dict[str, Any] = {"name": tier.name}
        if tier.up_to_units is not None:
            entry["up_to_units"] = tier.up_to_units
        entry["unit_price"] = format_nanos(tier.unit_price_nanos)
        tiers.append(entry)
    return {"tiers": tiers}


def _digest(prices: Mapping[str, Any]) -> str:
    canonical = json.dumps(prices, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sealed(card: RateCard) -> RateCard:
    """The card with the digest of its prices."""
    return RateCard(
        card.effective_month,
        card.currency,
        _digest(card.prices_data()),
        dict(sorted(card.services.items())),
        dict(sorted(card.methods.items())),
        dict(sorted(card.subscriptions_nanos.items())),
        card.free_units,
        card.retroactive,
    )


@dataclass(frozen=True)
class RateCards:
    """Every dated card of the policy, oldest first."""

    cards: tuple[RateCard, ...] = ()

    def for_month(self, month: str) -> RateCard | None:
        """The card in force in `month` (YYYY-MM), None before the first one."""
        in_force = [card for card in self.cards if card.effective_month <= month]
        return in_force[-1] if in_force else None

    def to_json(self) -> str:
        """The cards as the JSON document at RATE_CARDS_KEY."""
        cards = [
            {**card.prices_data(), "digest": card.digest, "retroactive": card.retroactive}
            for card in self.cards
        ]
        return json.dumps({"cards": cards}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RateCards:
        """The cards of a RATE_CARDS_KEY document; ValueError when it is malformed or a
        card's digest is not that of its prices (the document was edited by hand)."""
        try:
            cards = tuple(_card_of_json(card) for card in json.loads(text)["cards"])
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a rate cards document: {error!r}") from None
        months = [card.effective_month for card in cards]
        if months != sorted(set(months)):
            raise ValueError("the cards are not in order of distinct effective months")
        return cls(cards)


def _card_of_json(data: Mapping[str, Any]) -> RateCard:
    def price(data: Mapping[str, Any]) -> Price:
        return Price(
            tuple(
                PriceTier(
                    str(t["name"]),
                    None if t["up_to_units"] is None else int(t["up_to_units"]),
                    int(t["unit_price_nanos"]),
                )
                for t in data["tiers"]
            )
        )

    card = _sealed(
        RateCard(
            str(data["effective_month"]),
            str(data["currency"]),
            "",
            {name: price(tiers) for name, tiers in data["services"].items()},
            {path: price(tiers) for path, tiers in data["methods"].items()},
            {name: int(nanos) for name, nanos in data["subscriptions_nanos"].items()},
            int(data["free_units"]),
            bool(data.get("retroactive", False)),
        )
    )
    if card.digest != data["digest"]:
        raise ValueError(
            f"the card of {card.effective_month} does not match its digest: edited by hand?"
        )
    return card


def nanos_of(text: str) -> int:
    """A decimal string ("0.0010", "25") as nanos, exactly; ValueError saying why not."""
    found = _DECIMAL.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not an amount like \"0.0010\" (digits, one '.')")
    whole, decimals = found.group(1), found.group(2) or ""
    if len(decimals) > 9:
        raise ValueError(f"{text!r} has {len(decimals)} decimals: at most 9 (nanos)")
    nanos = int(whole) * NANOS + int(decimals.ljust(9, "0"))
    if nanos > _MAX_NANOS:
        raise ValueError(f"{text!r} is too large")
    return nanos


def format_nanos(nanos: int, *, decimals: int = 2) -> str:
    """Nanos as a decimal string with at least `decimals` decimals and no float on the
    way: 1_000_000 -> "0.001", 25_000_000_000 -> "25.00"."""
    sign = "-" if nanos < 0 else ""
    whole, fraction = divmod(abs(nanos), NANOS)
    digits = f"{fraction:09d}".rstrip("0").ljust(decimals, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


KeyPath = tuple[str | int, ...]


class RateCardsInvalid(ValueError):
    """Rate cards that do not validate; `problems` holds (key path within the section,
    message) for each."""

    def __init__(self, problems: list[tuple[KeyPath, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{_where(path)}: {message}" for path, message in problems))


def _where(path: KeyPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def parse_rate_cards(
    document: object,
    *,
    callees: Collection[str] | None = None,
    known_method: Callable[[str], bool] | None = None,
) -> RateCards:
    """The cards of a policy file's `rate_cards` (an array of tables), or RateCardsInvalid
    with every problem. `callees`, when given, are the departments a card may price;
    `known_method` says whether a method path names a method of a known contract."""
    parser = _Parser(callees, known_method)
    cards = parser.cards(document)
    if parser.problems:
        raise RateCardsInvalid(parser.problems)
    return RateCards(tuple(sorted(cards, key=lambda card: card.effective_month)))


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


class _Parser:
    """Reads cards, collecting every problem rather than stopping at the first."""

    def __init__(
        self, callees: Collection[str] | None, known_method: Callable[[str], bool] | None
    ) -> None:
        self.problems: list[tuple[KeyPath, str]] = []
        self._callees = callees
        self._known_method = known_method

    def fail(self, path: KeyPath, message: str) -> None:
        self.problems.append((path, message))

    def table(
        self, value: object, path: KeyPath, allowed: tuple[str, ...], what: str
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"must be a table, not {_kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.fail((*path, key), f"unknown field of {what} (known: {', '.join(allowed)})")
        return value

    def cards(self, document: object) -> list[RateCard]:
        if not isinstance(document, list):
            self.fail((), f"must be an array of tables ([[rate_cards]]), not {_kind(document)}")
            return []
        cards: list[RateCard] = []
        months: dict[str, int] = {}
        for number, entry in enumerate(document):
            card = self.card(entry, (number,))
            if card is None:
                continue
            if card.effective_month in months:
                self.fail(
                    (number, "effective_month"),
                    f"{card.effective_month} is already the month of"
                    f" rate_cards[{months[card.effective_month]}]: one card per month",
                )
                continue
            months[card.effective_month] = number
            cards.append(card)
        return cards

    def card(self, value: object, path: KeyPath) -> RateCard | None:
        fields = self.table(value, path, _CARD_FIELDS, "a rate card")
        if not fields and not isinstance(value, dict):
            return None
        before = len(self.problems)
        month = fields.get("effective_month")
        if month is None:
            self.fail(path, 'missing effective_month: the first month it prices, "YYYY-MM"')
        elif not isinstance(month, str) or not _MONTH.fullmatch(month):
            self.fail((*path, "effective_month"), f'{month!r} is not a month like "2026-11"')
        currency = fields.get("currency")
        if currency is None:
            self.fail(path, 'missing currency: an ISO 4217 code like "EUR"')
        elif not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            self.fail((*path, "currency"), f"{currency!r} is not an ISO 4217 code (three capitals)")
        free = fields.get("free_units", 0)
        if isinstance(free, bool) or not isinstance(free, int) or not 0 <= free <= _MAX_NANOS:
            self.fail((*path, "free_units"), f"must be a whole number >= 0, not {free!r}")
        retroactive = fields.get("retroactive", False)
        if not isinstance(retroactive, bool):
            self.fail((*path, "retroactive"), "must be true or false")
        services, subscriptions = self.services(fields.get("services", {}), (*path, "services"))
        methods = self.methods(fields.get("methods", {}), (*path, "methods"))
        if len(self.problems) > before:
            return None
        return _sealed(
            RateCard(
                str(month),
                str(currency),
                "",
                services,
                methods,
                subscriptions,
                int(free),
                bool(retroactive),
            )
        )

    def services(self, value: object, path: KeyPath) -> tuple[dict[str, Price], dict[str, int]]:
        prices: dict[str, Price] = {}
        subscriptions: dict[str, int] = {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a table of callees, not {_kind(value)}")
            return prices, subscriptions
        for callee, entry in value.items():
            where = (*path, callee)
            if self._callees is not None and callee not in self._callees:
                self.fail(where, f"unknown callee {callee!r}: not a declared department")
                continue
            fields = self.table(entry, where, (*_PRICE_FIELDS, "subscription"), "a callee's price")
            if "subscription" in fields:
                subscription = self.amount(fields["subscription"], (*where, "subscription"))
                if subscription is not None:
                    subscriptions[callee] = subscription
            if any(key in fields for key in _PRICE_FIELDS):
                price = self.price(fields, where)
                if price is not None:
                    prices[callee] = price
            elif isinstance(entry, dict) and "subscription" not in fields:
                self.fail(where, "missing unit_price, tiers or subscription")
        return prices, subscriptions

    def methods(self, value: object, path: KeyPath) -> dict[str, Price]:
        prices: dict[str, Price] = {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a table of method paths, not {_kind(value)}")
            return prices
        for method, entry in value.items():
            where = (*path, method)
            if not _METHOD_PATH.fullmatch(method):
                self.fail(where, f"{method!r} is not a method path like /package.Service/Method")
                continue
            if self._known_method is not None and not self._known_method(method):
                self.fail(where, f"unknown method {method!r}: no contract declares it")
                continue
            fields = self.table(entry, where, _PRICE_FIELDS, "a method's price")
            if not any(key in fields for key in _PRICE_FIELDS):
                if isinstance(entry, dict):
                    self.fail(where, "missing unit_price or tiers")
                continue
            price = self.price(fields, where)
            if price is not None:
                prices[method] = price
        return prices

    def price(self, fields: Mapping[str, Any], path: KeyPath) -> Price | None:
        if "unit_price" in fields and "tiers" in fields:
            self.fail(path, "give unit_price (one price) or tiers, not both")
            return None
        if "unit_price" in fields:
            nanos = self.amount(fields["unit_price"], (*path, "unit_price"))
            return None if nanos is None else Price((PriceTier(FLAT_TIER, None, nanos),))
        tiers_path = (*path, "tiers")
        value = fields["tiers"]
        if not isinstance(value, list) or not value:
            self.fail(tiers_path, "must be a non-empty array of tiers")
            return None
        before = len(self.problems)
        tiers: list[PriceTier] = []
        names: set[str] = set()
        bound = 0
        for number, entry in enumerate(value):
            where = (*tiers_path, number)
            tier = self.table(entry, where, _TIER_FIELDS, "a tier")
            name = tier.get("name")
            if not isinstance(name, str) or not name.strip():
                self.fail((*where, "name") if "name" in tier else where, "needs a name")
                name = ""
            elif name in names:
                self.fail((*where, "name"), f"{name!r} names another tier of this price too")
            names.add(name)
            last = number == len(value) - 1
            up_to = tier.get("up_to_units")
            if last and up_to is not None:
                self.fail(
                    (*where, "up_to_units"),
                    "the last tier has no bound: it prices all the units beyond the others",
                )
            elif not last and up_to is None:
                self.fail(where, "missing up_to_units: only the last tier is unbounded")
            elif up_to is not None:
                if isinstance(up_to, bool) or not isinstance(up_to, int) or up_to <= bound:
                    self.fail(
                        (*where, "up_to_units"),
                        f"must be a whole number above {bound} (the tiers' bounds increase),"
                        f" not {up_to!r}",
                    )
                else:
                    bound = up_to
            if "unit_price" not in tier:
                if isinstance(entry, dict):
                    self.fail(where, "missing unit_price")
                continue
            nanos = self.amount(tier["unit_price"], (*where, "unit_price"))
            if nanos is not None and isinstance(up_to, int | None):
                tiers.append(PriceTier(name, up_to, nanos))
        return Price(tuple(tiers)) if len(self.problems) == before else None

    def amount(self, value: object, path: KeyPath) -> int | None:
        if not isinstance(value, str):
            hint = " (a TOML number is not exact)" if isinstance(value, int | float) else ""
            self.fail(path, f'write an amount as a string like "0.0010", not {_kind(value)}{hint}')
            return None
        try:
            return nanos_of(value)
        except ValueError as error:
            self.fail(path, str(error))
            return None
