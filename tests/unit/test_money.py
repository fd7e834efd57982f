"""deptmesh.services.money: exact amounts and the checks every money field of a request gets."""

from __future__ import annotations

import pytest

from deptmesh.common.v1 import money_pb2
from deptmesh.services.money import Amount, check_money
from deptmesh.services.validation import FieldViolations
from deptmesh.sidecar.errors import InvalidArgument

# The bounds of an amount on the wire, pinned rather than imported: a billion units of a
# currency at most, in either direction, and a billion nanos to the unit.
MAX_UNITS = 1_000_000_000
NANOS_PER_UNIT = 1_000_000_000


def _violations(money: money_pb2.Money, *, present: bool = True, positive: bool = True) -> dict:
    violations = FieldViolations()
    check_money(violations, "amount", money, present=present, positive=positive)
    try:
        violations.raise_if_any()
    except InvalidArgument as error:
        return {v.field: v.description for v in error.violations}
    return {}


class TestAmount:
    @pytest.mark.parametrize(
        ("units", "nanos"),
        [
            (12, 340_000_000),
            (-12, -340_000_000),
            (0, 1),
            (0, -999_999_999),
            (0, 0),
            (2**62, 999_999_999),
            (-(2**62), -999_999_999),
        ],
    )
    def test_proto_round_trip(self, units, nanos):
        """An amount read from a Money message writes back the same units and nanos."""
        money = money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)

        amount = Amount.from_proto(money)

        assert amount == Amount("EUR", units * NANOS_PER_UNIT + nanos)
        assert amount.to_proto() == money

    def test_negative_amount_keeps_units_and_nanos_the_same_sign(self):
        """A negative fractional amount becomes negative units and negative nanos."""
        money = Amount("USD", -1_500_000_000).to_proto()

        assert (money.currency_code, money.units, money.nanos) == ("USD", -1, -500_000_000)

    def test_fraction_below_one_unit_has_zero_units(self):
        """An amount under one unit has zero units and all of it in nanos."""
        money = Amount("USD", -250_000_000).to_proto()

        assert (money.units, money.nanos) == (0, -250_000_000)

    @pytest.mark.parametrize(
        ("nanos", "text"),
        [
            (12_340_000_000, "12.34 EUR"),
            (12_000_000_000, "12.00 EUR"),
            (12_500_000_000, "12.50 EUR"),
            (0, "0.00 EUR"),
            (-1_050_000_000, "-1.05 EUR"),
            (-250_000_000, "-0.25 EUR"),
            (1, "0.000000001 EUR"),
            (1_234_567_000, "1.234567 EUR"),
        ],
    )
    def test_str(self, nanos, text):
        """An amount prints with at least two decimals, no extra trailing zeros, its currency."""
        assert str(Amount("EUR", nanos)) == text

    def test_amounts_compare_exactly(self):
        """Amounts in the same currency order by their exact value in nanos."""
        assert Amount("EUR", 1) < Amount("EUR", 2)
        assert Amount("EUR", NANOS_PER_UNIT) == Amount.from_proto(
            money_pb2.Money(currency_code="EUR", units=1)
        )


class TestCheckMoney:
    def test_valid_amount_has_no_violations(self):
        """A positive amount in a known currency passes."""
        assert _violations(money_pb2.Money(currency_code="EUR", units=10, nanos=500_000_000)) == {}

    def test_missing(self):
        """A money field that is not set is reported as required, and nothing else."""
        assert _violations(money_pb2.Money(), present=False) == {"amount": "required"}

    @pytest.mark.parametrize("code", ["XXX", "eur", "", "EURO"])
    def test_unknown_currency(self, code):
        """A currency code that is not an active ISO 4217 code is rejected on currency_code."""
        violations = _violations(money_pb2.Money(currency_code=code, units=1))

        assert list(violations) == ["amount.currency_code"]
        assert "ISO 4217" in violations["amount.currency_code"]

    @pytest.mark.parametrize("nanos", [NANOS_PER_UNIT, -NANOS_PER_UNIT, 2_000_000_000])
    def test_nanos_out_of_range(self, nanos):
        """Nanos of a billion or more in magnitude are rejected on the nanos field."""
        violations = _violations(money_pb2.Money(currency_code="EUR", units=0, nanos=nanos))

        assert list(violations) == ["amount.nanos"]
        assert "between" in violations["amount.nanos"]

    @pytest.mark.parametrize(("units", "nanos"), [(1, -1), (-1, 1)])
    def test_sign_mismatch(self, units, nanos):
        """Units and nanos with opposite signs are rejected on the nanos field."""
        violations = _violations(
            money_pb2.Money(currency_code="EUR", units=units, nanos=nanos), positive=False
        )

        assert violations == {"amount.nanos": "must have the same sign as units"}

    @pytest.mark.parametrize(("units", "nanos"), [(0, 0), (-1, 0), (0, -1), (-5, -500)])
    def test_not_positive_when_positive_required(self, units, nanos):
        """Zero or a negative amount is rejected when the field must be positive."""
        violations = _violations(money_pb2.Money(currency_code="EUR", units=units, nanos=nanos))

        assert violations == {"amount": "must be positive"}

    @pytest.mark.parametrize(("units", "nanos"), [(0, 0), (-1, 0), (0, -1)])
    def test_zero_or_negative_allowed_when_positive_not_required(self, units, nanos):
        """Zero and negative amounts pass when the field need not be positive."""
        money = money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)

        assert _violations(money, positive=False) == {}

    def test_units_at_limit(self):
        """Exactly MAX_UNITS units is allowed."""
        assert _violations(money_pb2.Money(currency_code="EUR", units=MAX_UNITS)) == {}

    @pytest.mark.parametrize("units", [MAX_UNITS + 1, -(MAX_UNITS + 1)])
    def test_units_over_limit(self, units):
        """More than MAX_UNITS units in magnitude is rejected on the units field."""
        violations = _violations(money_pb2.Money(currency_code="EUR", units=units), positive=False)

        assert violations == {"amount.units": f"must be at most {MAX_UNITS}"}

    def test_every_problem_is_reported(self):
        """An amount wrong in several ways reports each of them."""
        money = money_pb2.Money(currency_code="XXX", units=MAX_UNITS + 1, nanos=NANOS_PER_UNIT)

        assert set(_violations(money)) == {
            "amount.currency_code",
            "amount.nanos",
            "amount.units",
        }
