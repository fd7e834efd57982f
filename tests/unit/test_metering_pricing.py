"""The pure pricing of a month's usage: tiers, method over callee prices, the free allowance,
subscriptions, exact money in the card's currency."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.services.metering.pricing import WHOLE_CALLEE, price_statement
from deptmesh.sidecar.metering.rate_card import Price, PriceTier, RateCard

GET = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
LIST = "/deptmesh.hr.v1.EmployeeService/ListEmployees"
PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
BUDGET = "/deptmesh.finance.v1.BudgetService/GetBudget"

# 0.001 a unit for the first 1000 units of a month, 0.0005 for the rest.
HR_PRICE = Price((PriceTier("first 1k", 1000, 1_000_000), PriceTier("beyond", None, 500_000)))
FLAT_TENTH = Price((PriceTier("flat", None, 100_000_000),))


def card(**overrides) -> RateCard:
    fields = {
        "effective_month": "2026-01",
        "currency": "EUR",
        "digest": "ab" * 32,
        "services": {"hr": HR_PRICE},
    }
    fields.update(overrides)
    return RateCard(**fields)


def price(usage, rate_card, *, closed=False):
    return price_statement(
        "reimbursement", "2026-03", usage, rate_card, closed=closed, generate_time=Timestamp()
    )


def lines(statement):
    return [
        (i.callee, i.method, i.tier, i.units, i.unit_price.nanos, i.amount.units, i.amount.nanos)
        for i in statement.line_items
    ]


class TestTiers:
    def test_units_within_the_first_tier(self):
        """Units below the first tier's bound are one line at its price."""
        statement = price({("hr", GET): 600}, card())
        assert lines(statement) == [
            ("hr", WHOLE_CALLEE, "first 1k", 600, 1_000_000, 0, 600_000_000)
        ]
        assert (statement.total.units, statement.total.nanos) == (0, 600_000_000)

    def test_units_crossing_a_tier_bound_split_into_two_lines(self):
        """1500 units: 1000 at the first tier's price and 500 at the next, each line exact."""
        statement = price({("hr", GET): 1500}, card())
        assert lines(statement) == [
            ("hr", WHOLE_CALLEE, "first 1k", 1000, 1_000_000, 1, 0),
            ("hr", WHOLE_CALLEE, "beyond", 500, 500_000, 0, 250_000_000),
        ]
        assert (statement.total.units, statement.total.nanos) == (1, 250_000_000)

    def test_a_callee_priced_as_a_whole_counts_its_methods_together(self):
        """Two methods priced by their callee share the volume: 700 + 700 cross the bound."""
        statement = price({("hr", GET): 700, ("hr", LIST): 700}, card())
        assert [(i.tier, i.units) for i in statement.line_items] == [
            ("first 1k", 1000),
            ("beyond", 400),
        ]

    def test_three_tiers_crossed_at_once(self):
        """Units spanning three tiers fill each in turn."""
        three = Price(
            (PriceTier("a", 10, 3), PriceTier("b", 30, 2), PriceTier("c", None, 1)),
        )
        statement = price({("hr", GET): 45}, card(services={"hr": three}))
        assert [(i.tier, i.units, i.amount.nanos) for i in statement.line_items] == [
            ("a", 10, 30),
            ("b", 20, 40),
            ("c", 15, 15),
        ]
        assert statement.total.nanos == 85


class TestPrices:
    def test_a_method_price_wins_over_its_callee_price(self):
        """A method with a price of its own is its own line, out of its callee's volume."""
        rate_card = card(methods={LIST: FLAT_TENTH})
        statement = price({("hr", GET): 10, ("hr", LIST): 3}, rate_card)
        assert lines(statement) == [
            ("hr", WHOLE_CALLEE, "first 1k", 10, 1_000_000, 0, 10_000_000),
            ("hr", LIST, "flat", 3, 100_000_000, 0, 300_000_000),
        ]

    def test_a_callee_without_a_price_is_free(self):
        """Usage of a callee the card does not price makes no line and costs nothing."""
        statement = price({("finance", PAYOUT): 50}, card())
        assert list(statement.line_items) == []
        assert (statement.total.units, statement.total.nanos) == (0, 0)

    def test_lines_are_ordered_by_callee_method_and_tier(self):
        """Lines come by callee, then method, then tier order, whatever the input's order."""
        rate_card = card(services={"hr": HR_PRICE, "finance": FLAT_TENTH})
        statement = price(
            {("hr", GET): 1200, ("finance", PAYOUT): 1, ("finance", BUDGET): 1}, rate_card
        )
        assert [(i.callee, i.method, i.tier) for i in statement.line_items] == [
            ("finance", WHOLE_CALLEE, "flat"),
            ("hr", WHOLE_CALLEE, "first 1k"),
            ("hr", WHOLE_CALLEE, "beyond"),
        ]

    def test_money_is_exact_and_in_the_cards_currency(self):
        """A price of 1 nano over 10**12 units is 1000 units of money exactly, in USD."""
        one_nano = Price((PriceTier("nano", None, 1),))
        rate_card = card(currency="USD", services={"hr": one_nano}, subscriptions_nanos={"hr": 7})
        statement = price({("hr", GET): 10**12 + 3}, rate_card)
        [item] = statement.line_items
        assert (item.amount.currency_code, item.amount.units, item.amount.nanos) == ("USD", 1000, 3)
        assert (item.unit_price.units, item.unit_price.nanos) == (0, 1)
        total = statement.total
        assert (total.currency_code, total.units, total.nanos) == ("USD", 1000, 10)


class TestFreeAllowance:
    def test_the_allowance_covers_the_first_units_across_lines(self):
        """An allowance larger than the first line covers it and the start of the next."""
        rate_card = card(services={"finance": FLAT_TENTH, "hr": HR_PRICE}, free_units=25)
        statement = price({("finance", PAYOUT): 20, ("hr", GET): 1010}, rate_card)
        assert statement.free_units == 25
        # finance: all 20 free; hr: units 5..1010 charged, 995 in the first tier.
        assert [(i.callee, i.tier, i.units) for i in statement.line_items] == [
            ("hr", "first 1k", 995),
            ("hr", "beyond", 10),
        ]
        # 995 x 0.001 + 10 x 0.0005 = 1.000 exactly
        assert (statement.total.units, statement.total.nanos) == (1, 0)

    def test_free_units_count_toward_the_tiers(self):
        """Free units are the month's first: 1000 free of 1500 leave 500 in the second tier."""
        statement = price({("hr", GET): 1500}, card(free_units=1000))
        assert [(i.tier, i.units) for i in statement.line_items] == [("beyond", 500)]

    def test_an_allowance_larger_than_the_usage_covers_only_the_usage(self):
        """free_units says how many units the allowance covered, not its size."""
        statement = price({("hr", GET): 30}, card(free_units=1000))
        assert statement.free_units == 30
        assert list(statement.line_items) == []

    def test_free_callees_do_not_use_up_the_allowance(self):
        """Units of an unpriced callee cost nothing anyway: the allowance goes to priced ones."""
        statement = price({("finance", PAYOUT): 500, ("hr", GET): 10}, card(free_units=10))
        assert statement.free_units == 10
        assert list(statement.line_items) == []


class TestSubscriptions:
    def test_each_used_callee_with_a_subscription_is_charged_once(self):
        """A subscription is charged for every callee used in the month, priced or not."""
        rate_card = card(
            subscriptions_nanos={"finance": 5_000_000_000, "hr": 2_500_000_000, "travel": 1}
        )
        statement = price({("hr", GET): 1, ("finance", PAYOUT): 1}, rate_card)
        assert [(s.callee, s.amount.units, s.amount.nanos) for s in statement.subscriptions] == [
            ("finance", 5, 0),
            ("hr", 2, 500_000_000),
        ]
        assert (statement.total.units, statement.total.nanos) == (7, 501_000_000)

    def test_the_statement_names_its_card_and_month(self):
        """rate_card is the card's label (effective month, start of its digest); closed is kept."""
        statement = price({}, card(), closed=True)
        assert statement.rate_card == "2026-01 " + "ab" * 6
        assert (statement.department, statement.month, statement.closed) == (
            "reimbursement",
            "2026-03",
            True,
        )
        assert (statement.total.currency_code, statement.total.units) == ("EUR", 0)
