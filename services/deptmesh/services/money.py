"""Money as the contracts define it: currency code, whole units and nanos; never a float.

Inside a service an amount is an `Amount`: the currency and the total in nanos
(billionths of a unit) as one Python int, so sums and comparisons are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from deptmesh.common.v1 import money_pb2
from deptmesh.services.validation import FieldViolations

NANOS_PER_UNIT = 1_000_000_000
# No single claim, reservation or payout is larger than a billion units.
MAX_UNITS = 1_000_000_000

# Active ISO 4217 codes, excluding funds and precious metals.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
    """.split()  # noqa: SIM905 -- a word list reads better than 160 quoted strings
)


@dataclass(frozen=True, slots=True, order=True)
class Amount:
    """An exact amount: `nanos` is the whole amount in billionths of a unit."""

    currency: str
    nanos: int

    @classmethod
    def from_proto(cls, money: money_pb2.Money) -> Amount:
        return cls(money.currency_code, money.units * NANOS_PER_UNIT + money.nanos)

    def to_proto(self) -> money_pb2.Money:
        # Truncate toward zero so that units and nanos share the sign.
        units = abs(self.nanos) // NANOS_PER_UNIT * (-1 if self.nanos < 0 else 1)
        return money_pb2.Money(
            currency_code=self.currency, units=units, nanos=self.nanos - units * NANOS_PER_UNIT
        )

    def __str__(self) -> str:
        sign = "-" if self.nanos < 0 else ""
        whole, fraction = divmod(abs(self.nanos), NANOS_PER_UNIT)
        cents = f"{fraction:09d}".rstrip("0").ljust(2, "0")
        return f"{sign}{whole}.{cents} {self.currency}"


def check_money(
    violations: FieldViolations,
    field: str,
    money: money_pb2.Money,
    *,
    present: bool,
    positive: bool = True,
) -> None:
    """Adds a violation for each way `money` is malformed; `present` is HasField's answer."""
    if not present:
        violations.add(field, "required")
        return
    if money.currency_code not in ISO_4217:
        violations.add(
            f"{field}.currency_code",
            f"{money.currency_code!r} is not an ISO 4217 currency code",
        )
    if not -NANOS_PER_UNIT < money.nanos < NANOS_PER_UNIT:
        violations.add(f"{field}.nanos", "must be between -999999999 and 999999999")
    elif (money.units > 0 and money.nanos < 0) or (money.units < 0 and money.nanos > 0):
        violations.add(f"{field}.nanos", "must have the same sign as units")
    elif positive and (money.units < 0 or money.nanos < 0 or (money.units, money.nanos) == (0, 0)):
        violations.add(field, "must be positive")
    if abs(money.units) > MAX_UNITS:
        violations.add(f"{field}.units", f"must be at most {MAX_UNITS}")
