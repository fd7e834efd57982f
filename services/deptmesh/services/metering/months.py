"""Calendar months in UTC, as statements name them (YYYY-MM) and the ledger ranges them."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

__all__ = ["Month"]

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """The month `text` names (exactly YYYY-MM); ValueError otherwise."""
        match = _MONTH.fullmatch(text)
        if match is None or int(match[1]) < 1:
            raise ValueError(f"{text!r} is not a month YYYY-MM")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, moment: datetime.datetime) -> Month:
        """The UTC month `moment` (timezone-aware) falls in."""
        utc = moment.astimezone(datetime.UTC)
        return cls(utc.year, utc.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    @property
    def start_seconds(self) -> int:
        """Its first second, Unix time."""
        start = datetime.datetime(self.year, self.month, 1, tzinfo=datetime.UTC)
        return int(start.timestamp())

    @property
    def end_seconds(self) -> int:
        """The first second after it, Unix time."""
        return self.next().start_seconds
