"""What applying a document would change: per entry of each section, added, removed or changed.

An entry is what a reviewer thinks of as one rule: an intention (source ->
destination), a method rule (a method path), a department, one setting of the
quota policy (`tiers.batch.rate`), one setting of a rate card
(`2026-11.services.hr.tiers`). Values are shown as TOML writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deptmesh.sidecar.policy_document.schema import SECTIONS, PolicyDocument, format_key_path
from deptmesh.sidecar.policy_document.toml_file import toml_value

__all__ = ["Change", "policy_changes", "render_changes", "section_entries"]


@dataclass(frozen=True, slots=True)
class Change:
    section: str
    key: str
    before: str | None  # None: the entry is new
    after: str | None  # None: the entry goes

    def __str__(self) -> str:
        if self.before is None:
            return f"+ {self.key}: {self.after}"
        if self.after is None:
            return f"- {self.key}: {self.before}"
        return f"~ {self.key}: {self.before} => {self.after}"


def section_entries(document: PolicyDocument) -> dict[str, dict[str, str]]:
    """Section -> entry key -> the entry's value, as TOML writes it."""
    return {
        "departments": {
            name: toml_value(d) for name, d in document.to_data()["departments"].items()
        },
        "intentions": {f"{i.source} -> {i.destination}": i.action for i in document.intentions},
        "method_rules": {
            format_key_path((path,)): toml_value(callers)
            for path, callers in document.method_rules.items()
        },
        "quotas": dict(_leaves(document.quotas or {}, ())),
        "rate_cards": {
            key: value
            for card in document.rate_cards.cards
            for key, value in _leaves(
                {k: v for k, v in card.policy_data().items() if k != "effective_month"},
                (card.effective_month,),
            )
        },
        "monitoring": dict(
            _leaves(document.monitoring.to_data() if document.monitoring else {}, ())
        ),
    }


def _leaves(value: Mapping[str, Any], path: tuple[str, ...]) -> Iterable[tuple[str, str]]:
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            yield from _leaves(item, (*path, key))
        else:
            yield format_key_path((*path, key)), toml_value(item)


def policy_changes(live: PolicyDocument, wanted: PolicyDocument) -> tuple[Change, ...]:
    """What turns `live` into `wanted`, section by section in the document's order."""
    before, after = section_entries(live), section_entries(wanted)
    changes: list[Change] = []
    for section in (s for s in SECTIONS if s in before):
        old, new = before[section], after[section]
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                changes.append(Change(section, key, old.get(key), new.get(key)))
    return tuple(changes)


def render_changes(changes: Iterable[Change]) -> str:
    """The changes as a diff: a section heading, then `+`, `-` or `~` and the entry."""
    out: list[str] = []
    section = None
    for change in changes:
        if change.section != section:
            section = change.section
            out.append(f"{section}:")
        out.append(f"  {change}")
    return "\n".join(out)
