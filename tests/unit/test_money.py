"""Money: exact amounts and the validation of Money messages."""

from __future__ import annotations

import pytest
from deptmesh.common.v1 import money_pb2

from services.money import MAX_UNITS, Amount, check_money
from services.validation import FieldViolations
from sidecar.errors import InvalidArgument


def violations_of(money: money_pb2.Money | None, positive: bool = True) -> set[str]:
    violations = FieldViolations()
    check_money(
        violations,
        "amount",
        money or money_pb2.Money(),
        present=money is not None,
        positive=positive,
    )
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return {v.field for v in error.violations}
    return set()


class TestAmount:
    @pytest.mark.parametrize(
        ("units", "nanos"), [(0, 0), (42, 500_000_000), (-1, -750_000_000), (0, -5), (10**9, 1)]
    )
    def test_round_trip(self, units, nanos):
        """An Amount converts to and from Money without changing the value."""
        money = money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)
        assert Amount.from_proto(money).to_proto() == money

    def test_str_is_readable(self):
        """Amounts print with at least two decimals and their currency."""
        assert str(Amount("EUR", 42_500_000_000)) == "42.50 EUR"
        assert str(Amount("JPY", -1_000_000_001)) == "-1.000000001 JPY"


class TestCheckMoney:
    def test_valid_amount_passes(self):
        """A positive EUR amount has no violations."""
        assert violations_of(money_pb2.Money(currency_code="EUR", units=1)) == set()

    @pytest.mark.parametrize(
        ("money", "field"),
        [
            (None, "amount"),
            (money_pb2.Money(currency_code="XXX", units=1), "amount.currency_code"),
            (money_pb2.Money(currency_code="eur", units=1), "amount.currency_code"),
            (money_pb2.Money(currency_code="EUR", nanos=1_000_000_000), "amount.nanos"),
            (money_pb2.Money(currency_code="EUR", units=1, nanos=-1), "amount.nanos"),
            (money_pb2.Money(currency_code="EUR"), "amount"),
            (money_pb2.Money(currency_code="EUR", units=-1), "amount"),
            (money_pb2.Money(currency_code="EUR", units=MAX_UNITS + 1), "amount.units"),
        ],
    )
    def test_malformed_amounts(self, money, field):
        """Each malformation is reported on the field that carries it."""
        assert field in violations_of(money)

    def test_negative_allowed_when_not_required_positive(self):
        """With positive=False a negative amount is valid."""
        money = money_pb2.Money(currency_code="EUR", units=-1, nanos=-1)
        assert violations_of(money, positive=False) == set()
