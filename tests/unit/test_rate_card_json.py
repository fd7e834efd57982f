"""The ledger's reader of the rate cards document: the model's fields, validated, digested."""

from __future__ import annotations

import json

import pytest

from deptmesh.services.metering.rate_card_json import rate_cards_from_json

TIERS = {
    "tiers": [
        {"name": "first 100", "up_to_units": 100, "unit_price_nanos": 2},
        {"name": "beyond", "up_to_units": None, "unit_price_nanos": 1},
    ]
}


def document(*cards):
    return json.dumps({"cards": list(cards)})


def card(month="2026-01", **fields):
    return {"effective_month": month, "currency": "EUR", "services": {"hr": TIERS}, **fields}


class TestRateCardsFromJson:
    def test_cards_are_read_in_month_order_with_their_digest(self):
        """Cards come oldest first; each card's digest follows its content."""
        cards = rate_cards_from_json(document(card("2026-05"), card("2026-01", free_units=5)))
        assert [c.effective_month for c in cards.cards] == ["2026-01", "2026-05"]
        assert cards.for_month("2026-04").free_units == 5
        assert cards.cards[0].digest != cards.cards[1].digest
        assert cards.cards[0].services["hr"].tiers[0].up_to_units == 100

    @pytest.mark.parametrize(
        ("bad", "says"),
        [
            ({"effective_month": "2026-13"}, "effective_month"),
            ({"currency": "euro"}, "currency"),
            ({"free_units": -1}, "free_units"),
            ({"subscriptions_nanos": {"hr": 1.5}}, "subscriptions_nanos.hr"),
            ({"services": {"hr": {"tiers": []}}}, "services.hr.tiers"),
            (
                {
                    "services": {
                        "hr": {"tiers": [{"name": "a", "up_to_units": 5, "unit_price_nanos": 1}]}
                    }
                },
                "the last tier has no bound",
            ),
            ({"colour": "blue"}, "unknown keys"),
        ],
    )
    def test_a_bad_card_is_refused_saying_where(self, bad, says):
        """A bad field is a ValueError naming it."""
        with pytest.raises(ValueError, match=says):
            rate_cards_from_json(document(card(**bad)))

    def test_two_cards_for_one_month_are_refused(self):
        """Which card is in force must be clear."""
        with pytest.raises(ValueError, match="same month"):
            rate_cards_from_json(document(card(), card()))
