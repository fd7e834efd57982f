"""Where the ledger's rate cards come from: Consul KV (watched), a file, or nowhere.

With Consul, the document `deptmesh policy apply` writes at RATE_CARDS_KEY is
followed like the other policy documents: a change applies within one round
trip, a bad one is logged (`rate_cards_rejected`) and the last good cards stay
in force, and no document means no cards (every statement: NO_RATE_CARD).
Without Consul, `--rate-cards-file` holds the same document, re-read when it
changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import Registry
from deptmesh.sidecar.documents import ConsulDocument, FileDocument
from deptmesh.sidecar.metering.rate_card import RATE_CARDS_KEY, RateCards

__all__ = ["RateCardSource", "rate_card_source"]

# The cards in force, cheap to call; and how to stop following them.
RateCardSource = tuple[Callable[[], RateCards], Callable[[], None]]

NO_CARDS = RateCards()


def _nothing() -> None:
    return None


def rate_card_source(registry: Registry | None, file: Path | None) -> RateCardSource:
    """The cards `file` holds if given, else those at RATE_CARDS_KEY in Consul, else none.

    Raises OSError or ValueError when the file cannot be read or does not validate,
    ControlPlaneUnavailable when Consul cannot be asked.
    """
    if file is not None:
        document = FileDocument(
            file, lambda raw: RateCards.from_json(raw.decode()), name="rate_cards"
        )
        return document, _nothing
    if isinstance(registry, ConsulRegistry):
        watched = ConsulDocument(
            registry, RATE_CARDS_KEY, RateCards.from_json, absent=NO_CARDS, name="rate_cards"
        )
        return watched, watched.stop
    return (lambda: NO_CARDS), _nothing
