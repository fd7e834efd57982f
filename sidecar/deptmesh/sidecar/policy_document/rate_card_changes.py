"""Which rate card changes would reprice a month already begun: refused unless marked.

A statement of a closed month never changes, and a month to date is priced
with the card its month began with: a change takes effect from the month it
names, which must be a month still to come. So, comparing the cards in force
in Consul with a document's, at apply time (the live cards are the truth, the
file may have been edited anywhere), for every card of the current or a past
month:

- a card whose prices changed is refused unless it says `retroactive = true`;
- a card removed is refused unless the card then in force for its month says
  `retroactive = true`;
- a card added is refused when another card was already in force in its month,
  unless it says `retroactive = true`; a card for months nothing priced yet
  (the first card of a mesh, or one before it) changes no price.

Marking a card retroactive is the reviewed, explicit way to correct a wrong
price: the ledger reprices the months to date it covers (and closed months
whose statements it has not stored yet).
"""

from __future__ import annotations

from deptmesh.sidecar.metering.rate_card import RateCards

__all__ = ["past_rate_card_changes"]


def past_rate_card_changes(live: RateCards, wanted: RateCards, current_month: str) -> list[str]:
    """Why applying `wanted` over `live` would reprice a month not after `current_month`
    (YYYY-MM) without saying so; empty when it would not."""
    before = {card.effective_month: card for card in live.cards}
    after = {card.effective_month: card for card in wanted.cards}
    refusals: list[str] = []
    for month in sorted(before.keys() | after.keys()):
        if month > current_month:
            continue
        old, new = before.get(month), after.get(month)
        begun = f"{month}, a month already begun (the current month is {current_month})"
        if old is not None and new is not None:
            if old.digest != new.digest and not new.retroactive:
                refusals.append(f"the card of {month} changes the prices of {begun}")
        elif old is not None:
            taking_over = wanted.for_month(month)
            if taking_over is None or not taking_over.retroactive:
                refusals.append(f"the card of {month} is removed, which reprices {begun}")
        elif new is not None and live.for_month(month) is not None and not new.retroactive:
            refusals.append(f"a card of {month} is added, which reprices {begun}")
    return refusals
