"""What `deptmesh bill` prints: a statement as a table, CSV and JSON, money exact, the same
bytes every time."""

from __future__ import annotations

import json

import pytest

from deptmesh.common.v1.money_pb2 import Money
from deptmesh.sidecar.cli.bill import month_of
from deptmesh.sidecar.cli.statement_view import FORMATS, money_text, render_statements
from tests.statements import reimbursement_statement

TABLE = """\
statement of reimbursement for 2026-11 (closed: final), rate card 2026-11 7a47d46853dd, \
produced 2026-12-01T00:00:05Z
CALLEE   METHOD                                      TIER       UNITS  UNIT PRICE  AMOUNT EUR
finance  *                                           all units      6       0.002       0.012
finance  /deptmesh.finance.v1.PaymentService/Payout  all units      1        0.05        0.05
hr       *                                           first 10k      3       0.001       0.003
finance  subscription (monthly)                                                         25.00
         free allowance, not charged                                5                    0.00
TOTAL                                                                                  25.065
"""

CSV = """\
department,month,closed,rate_card,currency,kind,callee,method,tier,units,unit_price,amount
reimbursement,2026-11,true,2026-11 7a47d46853dd,EUR,usage,finance,*,all units,6,0.002,0.012
reimbursement,2026-11,true,2026-11 7a47d46853dd,EUR,usage,finance,\
/deptmesh.finance.v1.PaymentService/Payout,all units,1,0.05,0.05
reimbursement,2026-11,true,2026-11 7a47d46853dd,EUR,usage,hr,*,first 10k,3,0.001,0.003
reimbursement,2026-11,true,2026-11 7a47d46853dd,EUR,subscription,finance,,,,,25.00
reimbursement,2026-11,true,2026-11 7a47d46853dd,EUR,free_units,,,,5,,0.00
reimbursement,2026-11,true,2026-11 7a47d46853dd,EUR,total,,,,,,25.065
"""


class TestMoney:
    def test_money_is_written_exactly(self):
        """Units and nanos become a decimal string with no float on the way."""
        assert money_text(Money(currency_code="EUR", units=25, nanos=65_000_000)) == "25.065"
        assert money_text(Money(currency_code="EUR", units=0, nanos=1)) == "0.000000001"
        assert money_text(Money(currency_code="EUR", units=9_007_199_254_740_993)) == (
            "9007199254740993.00"
        )


class TestRendering:
    def test_a_table_has_line_items_subscriptions_free_units_and_total(self):
        """The table: a title with the month's status and the rate card, then one row per
        line item, subscription, the free allowance and the total, numbers aligned right."""
        assert render_statements([reimbursement_statement()], "table") == TABLE

    def test_csv_has_one_row_per_line_for_scripts(self):
        """CSV: one header, each row self-contained (department, month, card, kind)."""
        assert render_statements([reimbursement_statement()], "csv") == CSV

    def test_json_keeps_money_as_strings(self):
        """JSON: the statement's fields, amounts as exact decimal strings."""
        [statement] = json.loads(render_statements([reimbursement_statement()], "json"))[
            "statements"
        ]
        assert statement["total"] == "25.065"
        assert statement["currency"] == "EUR"
        assert statement["line_items"][1] == {
            "callee": "finance",
            "method": "/deptmesh.finance.v1.PaymentService/Payout",
            "tier": "all units",
            "units": 1,
            "unit_price": "0.05",
            "amount": "0.05",
        }
        assert statement["subscriptions"] == [{"callee": "finance", "amount": "25.00"}]
        assert statement["status"] == "closed"
        assert statement["generate_time"] == "2026-12-01T00:00:05Z"

    @pytest.mark.parametrize("format", FORMATS)
    def test_the_same_statement_renders_to_the_same_bytes(self, format):
        """Nothing of the moment is added: a closed month prints identically every time."""
        first = render_statements([reimbursement_statement()], format)
        assert render_statements([reimbursement_statement()], format) == first

    def test_month_to_date_is_marked(self):
        """An open month says it is month to date, not final."""
        table = render_statements([reimbursement_statement(closed=False)], "table")
        assert "(month to date: not final)" in table.splitlines()[0]


class TestMonth:
    def test_current_is_the_utc_month_and_others_are_checked(self):
        """`current` is now's month in UTC; anything but YYYY-MM is refused."""
        from datetime import UTC, datetime

        assert month_of("current", datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == "2026-11"
        assert month_of("2026-02", datetime(2026, 11, 30, tzinfo=UTC)) == "2026-02"
        for bad in ("2026-13", "26-11", "november"):
            with pytest.raises(ValueError, match="is not YYYY-MM"):
                month_of(bad, datetime(2026, 11, 30, tzinfo=UTC))
