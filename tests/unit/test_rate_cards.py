"""Rate cards as code: the policy file's [[rate_cards]] parsed exactly to nanos, every
bad card refused at its line and field, a stable digest, the JSON the ledger reads, and
which changes would reprice a month already begun."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from deptmesh.services.company_policy import company_policy
from deptmesh.sidecar.metering.rate_card import (
    FLAT_TIER,
    Price,
    PriceTier,
    RateCards,
    RateCardsInvalid,
    format_nanos,
    nanos_of,
    parse_rate_cards,
)
from deptmesh.sidecar.policy_document import (
    PolicyDocumentInvalid,
    parse_policy_text,
    policy_changes,
    render_changes,
    render_policy,
)
from deptmesh.sidecar.policy_document.rate_card_changes import past_rate_card_changes

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"

HEAD = """\
schema_version = 2

[departments]
hr = {}
finance = {}
reimbursement = {}

[[intentions]]
source = "reimbursement"
destination = "hr"
action = "allow"
"""

CARD = """
[[rate_cards]]
effective_month = "2026-11"
currency = "EUR"
free_units = 100

[rate_cards.services.hr]
tiers = [
  { name = "first 10k", up_to_units = 10000, unit_price = "0.0010" },
  { name = "beyond", unit_price = "0.0005" },
]
subscription = "25.00"

[rate_cards.services.finance]
unit_price = "0.002"

[rate_cards.methods."/deptmesh.finance.v1.PaymentService/Payout"]
unit_price = "0.123456789"
"""


def document(cards: str = CARD):
    return parse_policy_text(HEAD + cards, name="policy.toml")


def problems(cards: str) -> list[str]:
    with pytest.raises(PolicyDocumentInvalid) as raised:
        document(cards)
    return list(raised.value.lines)


def card_text(**fields: str) -> str:
    """A one-card section with its fields replaced (TOML values as written)."""
    values = {"effective_month": '"2026-11"', "currency": '"EUR"', **fields}
    lines = [f"{key} = {value}" for key, value in values.items()]
    return (
        "\n[[rate_cards]]\n" + "\n".join(lines) + '\n[rate_cards.services.hr]\nunit_price = "1"\n'
    )


class TestAmounts:
    def test_decimal_strings_become_exact_nanos(self):
        """Prices are read digit by digit, never through a float."""
        assert nanos_of("0.0010") == 1_000_000
        assert nanos_of("25") == 25_000_000_000
        assert nanos_of("0.1") + nanos_of("0.2") == nanos_of("0.3")
        assert nanos_of("0.000000001") == 1

    @pytest.mark.parametrize("text", ["0.0000000001", "-1", "1e3", "1.", ".5", "1,5", ""])
    def test_anything_but_plain_decimals_of_nine_places_is_refused(self, text):
        """More than nine decimals, signs, exponents and stray punctuation are refused."""
        with pytest.raises(ValueError, match=r"is not an amount|decimals: at most 9"):
            nanos_of(text)

    def test_nanos_are_written_back_with_at_least_two_decimals(self):
        """format_nanos keeps what is needed and no more: exact and readable."""
        assert format_nanos(1_000_000) == "0.001"
        assert format_nanos(25_000_000_000) == "25.00"
        assert format_nanos(123_456_789) == "0.123456789"
        assert format_nanos(-1_500_000_000) == "-1.50"
        assert format_nanos(7, decimals=0) == "0.000000007"
        assert format_nanos(3 * 10**9, decimals=0) == "3"


class TestValidCard:
    def test_a_card_is_read_into_the_model(self):
        """Tiers, a flat price, a method's own price, a subscription and the free units."""
        [card] = document().rate_cards.cards
        assert card.effective_month == "2026-11"
        assert card.currency == "EUR"
        assert card.free_units == 100
        assert card.services["hr"] == Price(
            (PriceTier("first 10k", 10_000, 1_000_000), PriceTier("beyond", None, 500_000))
        )
        assert card.services["finance"] == Price((PriceTier(FLAT_TIER, None, 2_000_000),))
        assert card.methods[PAYOUT].tiers[0].unit_price_nanos == 123_456_789
        assert card.subscriptions_nanos == {"hr": 25_000_000_000}
        assert card.price_of("finance", PAYOUT) == card.methods[PAYOUT]
        assert (
            card.price_of("finance", "/deptmesh.finance.v1.BudgetService/GetBudget")
            == (card.services["finance"])
        )
        assert card.price_of("reimbursement", "/x.y.v1.S/M") is None
        assert card.label == f"2026-11 {card.digest[:12]}"

    def test_cards_are_ordered_by_month_and_the_latest_in_force_prices_a_month(self):
        """for_month picks the card whose month is the latest not after the month asked."""
        cards = document(card_text(effective_month='"2027-02"') + card_text()).rate_cards
        assert [c.effective_month for c in cards.cards] == ["2026-11", "2027-02"]
        assert cards.for_month("2026-10") is None
        assert cards.for_month("2027-01") is cards.cards[0]
        assert cards.for_month("2027-03") is cards.cards[1]

    def test_a_subscription_alone_is_a_price_of_its_own(self):
        """A callee may charge only a subscription: its units are then free."""
        cards = parse_rate_cards(
            [
                {
                    "effective_month": "2026-11",
                    "currency": "EUR",
                    "services": {"hr": {"subscription": "9.99"}},
                }
            ]
        )
        [card] = cards.cards
        assert card.subscriptions_nanos == {"hr": 9_990_000_000}
        assert card.price_of("hr", "/a.b.v1.S/M") is None

    def test_the_company_card_prices_every_department(self):
        """The company's file has one card from 2026-11: hr tiered, a finance subscription,
        travel and reimbursement per unit, a free allowance."""
        [card] = company_policy().rate_cards.cards
        assert card.effective_month == "2026-11"
        assert set(card.services) >= {"hr", "finance", "travel", "reimbursement"}
        assert len(card.services["hr"].tiers) == 2
        assert card.subscriptions_nanos
        assert card.free_units > 0


class TestInvalidCards:
    def test_an_unknown_callee_is_reported_at_its_line(self):
        """A callee must be a declared department."""
        [line] = problems(CARD.replace("services.finance]", "services.payroll]"))
        assert line == (
            "policy.toml:25: rate_cards[0].services.payroll: unknown callee 'payroll':"
            " not a declared department"
        )

    def test_tiers_that_do_not_increase_are_refused(self):
        """Each tier's bound is above the previous one."""
        cards = CARD.replace(
            '{ name = "beyond", unit_price = "0.0005" }',
            '{ name = "next", up_to_units = 5000, unit_price = "0.0008" },\n'
            '  { name = "beyond", unit_price = "0.0005" }',
        )
        [line] = problems(cards)
        assert line == (
            "policy.toml:21: rate_cards[0].services.hr.tiers[1].up_to_units: must be a whole"
            " number above 10000 (the tiers' bounds increase), not 5000"
        )

    def test_a_bounded_last_tier_is_refused(self):
        """The last tier prices everything beyond the others: it has no bound."""
        cards = CARD.replace('name = "beyond",', 'name = "beyond", up_to_units = 20000,')
        [line] = problems(cards)
        assert line.startswith("policy.toml:21: rate_cards[0].services.hr.tiers[1].up_to_units:")
        assert "the last tier has no bound" in line

    def test_a_currency_that_is_no_iso_code_is_refused(self):
        """Three capital letters, as ISO 4217 writes them."""
        [line] = problems(card_text(currency='"euro"'))
        assert line == (
            "policy.toml:15: rate_cards[0].currency: 'euro' is not an ISO 4217 code"
            " (three capitals)"
        )

    def test_a_price_with_more_than_nine_decimals_is_refused(self):
        """Nanos are the smallest amount: a tenth decimal would be rounded, so it is refused."""
        [line] = problems(CARD.replace('"0.123456789"', '"0.1234567891"'))
        assert line == (
            'policy.toml:29: rate_cards[0].methods."/deptmesh.finance.v1.PaymentService/Payout"'
            ".unit_price: '0.1234567891' has 10 decimals: at most 9 (nanos)"
        )

    def test_a_price_written_as_a_number_is_refused(self):
        """A TOML float is binary floating point: prices are strings."""
        [line] = problems(CARD.replace('unit_price = "0.002"', "unit_price = 0.002"))
        assert line.startswith("policy.toml:26: rate_cards[0].services.finance.unit_price:")
        assert "not a number (a TOML number is not exact)" in line

    def test_two_cards_of_one_month_are_refused(self):
        """One card per effective month."""
        [line] = problems(card_text() + card_text())
        assert line == (
            "policy.toml:20: rate_cards[1].effective_month: 2026-11 is already the month of"
            " rate_cards[0]: one card per month"
        )

    def test_a_malformed_month_and_unknown_fields_are_each_reported(self):
        """Every problem of a card is reported, each at its own line."""
        lines = problems(card_text(effective_month='"2026-13"', discount='"10%"'))
        assert lines == [
            "policy.toml:14: rate_cards[0].effective_month: '2026-13' is not a month like"
            ' "2026-11"',
            "policy.toml:16: rate_cards[0].discount: unknown field of a rate card (known:"
            " effective_month, currency, free_units, retroactive, services, methods)",
        ]

    def test_an_unknown_method_is_refused(self):
        """A method's own price names a method some contract declares."""
        [line] = problems(CARD.replace("PaymentService/Payout", "PaymentService/Refund"))
        assert "unknown method '/deptmesh.finance.v1.PaymentService/Refund'" in line

    def test_rate_cards_need_schema_2(self):
        """A document written to schema 1 never holds the section schema 2 added."""
        text = HEAD.replace("schema_version = 2", "schema_version = 1") + CARD
        with pytest.raises(PolicyDocumentInvalid) as raised:
            parse_policy_text(text, name="policy.toml")
        assert raised.value.lines == (
            "policy.toml:13: rate_cards: a section of schema 2:"
            " say `schema_version = 2` (or newer)",
        )

    def test_the_parser_collects_paths_within_the_section(self):
        """parse_rate_cards itself, without a policy file, names each problem's path."""
        with pytest.raises(RateCardsInvalid) as raised:
            parse_rate_cards([{"effective_month": "2026-11"}, "not a table"])
        assert raised.value.problems == (
            ((0,), 'missing currency: an ISO 4217 code like "EUR"'),
            ((1,), "must be a table, not a string"),
        )


class TestDigest:
    def test_the_digest_is_the_sha256_of_the_cards_prices(self):
        """Pinned: the ledger stores it in statements, so it must never drift."""
        [card] = parse_rate_cards(
            [
                {
                    "effective_month": "2026-11",
                    "currency": "EUR",
                    "services": {"hr": {"unit_price": "0.001"}},
                }
            ]
        ).cards
        canonical = (
            '{"currency":"EUR","effective_month":"2026-11","free_units":0,"methods":{},'
            '"services":{"hr":{"tiers":[{"name":"all units","unit_price_nanos":1000000,'
            '"up_to_units":null}]}},"subscriptions_nanos":{}}'
        )
        assert card.digest == hashlib.sha256(canonical.encode()).hexdigest()
        assert card.digest == "3482ddce9937ff1bed76d3dafb75564fa33e8c2725e4cda3db517ed59ea6ff96"

    def test_the_same_prices_written_otherwise_have_the_same_digest(self):
        """Key order, trailing zeros, a flat tier spelled as tiers and the retroactive mark
        change nothing; a price does."""
        first = parse_rate_cards(
            [
                {
                    "effective_month": "2026-11",
                    "currency": "EUR",
                    "services": {"hr": {"unit_price": "0.0010"}, "finance": {"subscription": "5"}},
                }
            ]
        ).cards[0]
        second = parse_rate_cards(
            [
                {
                    "retroactive": True,
                    "services": {
                        "finance": {"subscription": "5.00"},
                        "hr": {"tiers": [{"name": FLAT_TIER, "unit_price": "0.001"}]},
                    },
                    "currency": "EUR",
                    "effective_month": "2026-11",
                }
            ]
        ).cards[0]
        assert first.digest == second.digest
        other = parse_rate_cards(
            [
                {
                    "effective_month": "2026-11",
                    "currency": "EUR",
                    "services": {"hr": {"unit_price": "0.0011"}, "finance": {"subscription": "5"}},
                }
            ]
        ).cards[0]
        assert other.digest != first.digest


class TestLedgerDocument:
    def test_the_json_round_trips_and_is_the_dataclasses(self):
        """What apply writes at RATE_CARDS_KEY is the model as dataclasses.asdict has it, and
        reads back to equal cards."""
        cards = document().rate_cards
        text = cards.to_json()
        assert json.loads(text) == json.loads(json.dumps(dataclasses.asdict(cards)))
        assert RateCards.from_json(text) == cards

    def test_a_card_edited_by_hand_in_consul_is_refused(self):
        """A price changed under its digest does not read."""
        data = json.loads(document().rate_cards.to_json())
        data["cards"][0]["free_units"] = 1_000_000
        with pytest.raises(ValueError, match="does not match its digest"):
            RateCards.from_json(json.dumps(data))

    def test_a_malformed_document_is_a_value_error(self):
        """A document missing a field reads as a ValueError, never a KeyError."""
        with pytest.raises(ValueError, match="not a rate cards document"):
            RateCards.from_json('{"cards": [{"currency": "EUR"}]}')


class TestPolicyFile:
    def test_rendering_reads_back_to_the_same_document(self):
        """`deptmesh policy show` writes cards that read back equal."""
        policy = document(CARD + card_text(effective_month='"2027-01"', retroactive="true"))
        assert parse_policy_text(render_policy(policy)) == policy

    def test_changes_name_each_setting_of_a_card(self):
        """A diff shows the card's month and the setting that changes."""
        before = document()
        after = document(CARD.replace('unit_price = "0.002"', 'unit_price = "0.003"'))
        assert render_changes(policy_changes(before, after)) == (
            'rate_cards:\n  ~ 2026-11.services.finance.unit_price: "0.002" => "0.003"'
        )


def cards(*entries: tuple[str, str, bool]) -> RateCards:
    """Cards of (month, hr's unit price, retroactive)."""
    return parse_rate_cards(
        [
            {
                "effective_month": month,
                "currency": "EUR",
                "retroactive": retroactive,
                "services": {"hr": {"unit_price": price}},
            }
            for month, price, retroactive in entries
        ]
    )


class TestPastMonths:
    def test_the_first_card_may_price_the_current_month(self):
        """Nothing was priced before: adding a card for this month reprices nothing."""
        assert past_rate_card_changes(RateCards(), cards(("2026-11", "1", False)), "2026-11") == []

    def test_a_change_from_next_month_is_allowed(self):
        """A new card for a month to come leaves every begun month as it was."""
        live = cards(("2026-11", "1", False))
        wanted = cards(("2026-11", "1", False), ("2026-12", "2", False))
        assert past_rate_card_changes(live, wanted, "2026-11") == []

    def test_changing_the_current_card_is_refused_unless_retroactive(self):
        """A price of the month to date changes only when the card says so."""
        live = cards(("2026-11", "1", False))
        assert past_rate_card_changes(live, cards(("2026-11", "2", False)), "2026-11") == [
            "the card of 2026-11 changes the prices of 2026-11, a month already begun"
            " (the current month is 2026-11)"
        ]
        assert past_rate_card_changes(live, cards(("2026-11", "2", True)), "2026-11") == []

    def test_a_card_added_over_a_begun_month_is_refused(self):
        """A new card for this month would replace the prices the month began with."""
        live = cards(("2026-10", "1", False))
        wanted = cards(("2026-10", "1", False), ("2026-11", "2", False))
        [reason] = past_rate_card_changes(live, wanted, "2026-11")
        assert reason.startswith("a card of 2026-11 is added")

    def test_removing_a_past_card_is_refused(self):
        """Dropping an old card would reprice its months with the one before."""
        live = cards(("2026-09", "1", False), ("2026-10", "2", False))
        [reason] = past_rate_card_changes(live, cards(("2026-09", "1", False)), "2026-11")
        assert reason.startswith("the card of 2026-10 is removed")
        assert past_rate_card_changes(live, cards(("2026-09", "1", True)), "2026-11") == []

    def test_marking_a_card_retroactive_alone_changes_no_price(self):
        """The retroactive mark is not part of the prices: adding or dropping it is free."""
        live = cards(("2026-11", "1", True))
        assert past_rate_card_changes(live, cards(("2026-11", "1", False)), "2026-12") == []
