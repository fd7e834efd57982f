"""The rate cards document (JSON, at RATE_CARDS_KEY or in a file) read into RateCards.

The ledger's own reader of the document `deptmesh policy apply` writes, until
the policy file's parser (`parse_rate_cards`, beside the RateCard model) takes
its place; the ledger uses nothing here but `rate_cards_from_json`. The
document holds the model's fields as they are named there:

    {"cards": [
      {"effective_month": "2026-01", "currency": "EUR", "free_units": 1000,
       "services": {"hr": {"tiers": [
          {"name": "first 100k", "up_to_units": 100000, "unit_price_nanos": 2000000},
          {"name": "beyond", "up_to_units": null, "unit_price_nanos": 1000000}]}},
       "methods": {"/deptmesh.hr.v1.EmployeeService/ListEmployees": {"tiers": [...]}},
       "subscriptions_nanos": {"hr": 50000000000}}
    ]}

A card's digest is the SHA-256 of its canonical JSON (keys sorted, no spaces).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from deptmesh.sidecar.metering.rate_card import Price, PriceTier, RateCard, RateCards

__all__ = ["rate_cards_from_json"]

_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_CURRENCY = re.compile(r"[A-Z]{3}")
_CARD_KEYS = {
    "effective_month",
    "currency",
    "free_units",
    "services",
    "methods",
    "subscriptions_nanos",
    "digest",
}


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a whole number, 0 or more")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


def _price(data: object, where: str) -> Price:
    tiers_data = _object(data, where).get("tiers")
    if not isinstance(tiers_data, list) or not tiers_data:
        raise ValueError(f"{where}.tiers must be a list of at least one tier")
    tiers: list[PriceTier] = []
    floor = 0
    for n, raw in enumerate(tiers_data):
        at = f"{where}.tiers[{n}]"
        tier = _object(raw, at)
        name = tier.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{at}.name must be a non-empty string")
        up_to = tier.get("up_to_units")
        last = n == len(tiers_data) - 1
        if last and up_to is not None:
            raise ValueError(f"{at}.up_to_units must be null: the last tier has no bound")
        if not last and (_count(up_to, f"{at}.up_to_units") <= floor):
            raise ValueError(f"{at}.up_to_units must be above the tier before ({floor})")
        tiers.append(PriceTier(name, up_to, _count(tier.get("unit_price_nanos"), at)))
        floor = up_to or floor
    return Price(tuple(tiers))


def _card(data: object, where: str) -> RateCard:
    card = _object(data, where)
    unknown = set(card) - _CARD_KEYS
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
    month = card.get("effective_month")
    if not isinstance(month, str) or not _MONTH.fullmatch(month):
        raise ValueError(f"{where}.effective_month must be YYYY-MM")
    currency = card.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ValueError(f"{where}.currency must be an ISO 4217 code such as EUR")
    services = _object(card.get("services", {}), f"{where}.services")
    methods = _object(card.get("methods", {}), f"{where}.methods")
    subscriptions = _object(card.get("subscriptions_nanos", {}), f"{where}.subscriptions_nanos")
    without_digest = {k: v for k, v in card.items() if k != "digest"}
    canonical = json.dumps(without_digest, sort_keys=True, separators=(",", ":"))
    return RateCard(
        effective_month=month,
        currency=currency,
        digest=hashlib.sha256(canonical.encode()).hexdigest(),
        services={k: _price(v, f"{where}.services.{k}") for k, v in services.items()},
        methods={k: _price(v, f"{where}.methods.{k}") for k, v in methods.items()},
        subscriptions_nanos={
            k: _count(v, f"{where}.subscriptions_nanos.{k}") for k, v in subscriptions.items()
        },
        free_units=_count(card.get("free_units", 0), f"{where}.free_units"),
    )


def rate_cards_from_json(text: str | bytes) -> RateCards:
    """The cards of a rate cards document, oldest first; ValueError saying what is wrong."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"the rate cards are not JSON: {error}") from error
    cards_data = _object(data, "the rate cards").get("cards")
    if not isinstance(cards_data, list):
        raise ValueError('the rate cards must be an object with a "cards" list')
    cards = sorted(
        (_card(card, f"cards[{n}]") for n, card in enumerate(cards_data)),
        key=lambda card: card.effective_month,
    )
    months = [card.effective_month for card in cards]
    if len(set(months)) != len(months):
        raise ValueError("two cards take effect in the same month")
    return RateCards(tuple(cards))
