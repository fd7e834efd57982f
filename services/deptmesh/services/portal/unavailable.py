"""The one error a page's source raises when it cannot answer: the page shows its message."""

from __future__ import annotations

__all__ = ["SourceUnavailable"]


class SourceUnavailable(Exception):
    """A source (Consul, the ledger, the trace store, Alertmanager) is absent or refused;
    the message says which and why, in a sentence a page can show."""
