"""The policy in force in Consul, read back as a document, with what check-and-set needs.

Where each section lives (the services watch the first three):

- intentions: Consul's intentions, every one of them (the document is the
  whole truth: an intention it does not hold is removed by an apply);
- method_rules: the method-rules document at deptmesh/policy/method-rules;
- quotas: the quota policy at deptmesh/policy/quotas;
- departments: deptmesh/policy/departments, for `deptmesh policy show`;
- rate_cards: the cards as JSON at deptmesh/policy/rate_cards, which the usage
  ledger prices statements with (deptmesh.sidecar.metering.rate_card);
- monitoring: deptmesh/policy/monitoring (SLOs and traffic thresholds), so that
  the policy in force is the whole file; the rules are generated from the file;
- deptmesh/policy/applied: the apply record (serial, state, when, digest of
  the document), which every apply writes with check-and-set first and last
  (see apply.py).

A live document that does not validate (written by hand) is reported in
`problems` and read as empty; an apply replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from deptmesh.registry.acl import POLICY_PREFIX
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.authorization.policy import Intention, parse_method_rules
from deptmesh.sidecar.authorization.sources import METHOD_RULES_KEY
from deptmesh.sidecar.metering.rate_card import RATE_CARDS_KEY, RateCards
from deptmesh.sidecar.policy_document.monitoring import MonitoringPolicy, parse_monitoring
from deptmesh.sidecar.policy_document.schema import Department, PolicyDocument
from deptmesh.sidecar.quotas.policy import parse_quota_policy
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY

__all__ = [
    "APPLIED_KEY",
    "DEPARTMENTS_KEY",
    "KV_SECTIONS",
    "MONITORING_KEY",
    "AppliedRecord",
    "LivePolicy",
    "kv_documents",
    "read_live_policy",
]

DEPARTMENTS_KEY = f"{POLICY_PREFIX}departments"
MONITORING_KEY = f"{POLICY_PREFIX}monitoring"
APPLIED_KEY = f"{POLICY_PREFIX}applied"


def _json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _departments_text(document: PolicyDocument) -> str | None:
    return _json({"departments": document.to_data()["departments"]})


def _method_rules_text(document: PolicyDocument) -> str | None:
    rules = document.to_data()["method_rules"]
    return _json({"methods": rules}) if rules else None


def _quotas_text(document: PolicyDocument) -> str | None:
    return None if document.quotas is None else _json(document.quotas)


def _rate_cards_text(document: PolicyDocument) -> str | None:
    return document.rate_cards.to_json() if document.rate_cards.cards else None


def _monitoring_text(document: PolicyDocument) -> str | None:
    return None if document.monitoring is None else _json(document.monitoring.to_data())


def _parse_monitoring(text: str, tiers: Collection[str]) -> MonitoringPolicy:
    """The section as _monitoring_text wrote it (ValueError naming what is wrong)."""
    problems: list[str] = []
    policy = parse_monitoring(
        json.loads(text),
        fail=lambda path, message: problems.append(f"{path}: {message}"),
        department=lambda name, path: True,  # the departments in force are read apart
        tiers=tiers,
    )
    if policy is None or problems:
        raise ValueError("; ".join(problems) or "not a table")
    return policy


# Section -> its KV key and its document there (None: no document); new sections
# that live in KV are added here.
KV_SECTIONS: Mapping[str, tuple[str, Callable[[PolicyDocument], str | None]]] = {
    "departments": (DEPARTMENTS_KEY, _departments_text),
    "method_rules": (METHOD_RULES_KEY, _method_rules_text),
    "quotas": (QUOTA_POLICY_KEY, _quotas_text),
    "rate_cards": (RATE_CARDS_KEY, _rate_cards_text),
    "monitoring": (MONITORING_KEY, _monitoring_text),
}


def kv_documents(document: PolicyDocument) -> dict[str, str | None]:
    """KV key -> the text a document puts there (None: the key is deleted)."""
    return {key: text(document) for key, text in KV_SECTIONS.values()}


@dataclass(frozen=True, slots=True)
class AppliedRecord:
    """The apply record at APPLIED_KEY: `modify_index` 0 when no apply ever ran."""

    modify_index: int
    text: str | None
    serial: int = 0
    state: str = ""  # "applying" while an apply runs, then "applied"
    at: float = 0.0  # when the apply started (applying) or ended (applied), epoch seconds

    @classmethod
    def parse(cls, modify_index: int, text: str | None) -> AppliedRecord:
        try:
            data = json.loads(text or "{}")
            return cls(
                modify_index, text, int(data["serial"]), str(data["state"]), float(data["at"])
            )
        except (ValueError, KeyError, TypeError):
            return cls(modify_index, text)  # unreadable: as if no apply had run


@dataclass(frozen=True)
class LivePolicy:
    document: PolicyDocument
    intention_ids: Mapping[tuple[str, str], str]  # (source, destination) -> Consul's ID
    kv_indexes: Mapping[str, int]  # KV key -> ModifyIndex (0: absent), for check-and-set
    applied: AppliedRecord
    problems: tuple[str, ...]


def read_live_policy(registry: ConsulRegistry) -> LivePolicy:
    """What is in force; raises RegistryError when Consul cannot be asked or refuses."""
    # The record first: an apply that starts after this read moves it, and a
    # commit planned on this read then fails its check-and-set.
    applied = AppliedRecord.parse(*registry.kv_entry(APPLIED_KEY))
    _, entries = registry.intentions(0, 0)
    texts = {key: registry.kv_entry(key) for key, _ in KV_SECTIONS.values()}
    problems: list[str] = []

    def parsed(key: str, parse: Callable[[str], Any]) -> Any:
        text = texts[key][1]
        if text is None:
            return None
        try:
            return parse(text)
        except (ValueError, KeyError, TypeError) as error:
            problems.append(f"{key} does not validate, read as empty: {error}")
            return None

    intentions = tuple(
        Intention(
            e["SourceName"], e["DestinationName"], "allow" if e["Action"] == "allow" else "deny"
        )
        for e in entries
    )
    rules = parsed(METHOD_RULES_KEY, parse_method_rules)
    quotas = parsed(
        QUOTA_POLICY_KEY, lambda text: _canonical_quotas(parse_quota_policy(text).describe())
    )
    rate_cards = parsed(RATE_CARDS_KEY, RateCards.from_json) or RateCards()
    tiers = set((quotas or {}).get("tiers", {}))
    monitoring = parsed(MONITORING_KEY, lambda text: _parse_monitoring(text, tiers))
    declared = parsed(DEPARTMENTS_KEY, lambda text: dict(json.loads(text)["departments"])) or {}
    departments = {
        name: Department(str(fields.get("description", "")) if isinstance(fields, dict) else "")
        for name, fields in declared.items()
    }
    method_rules = {} if rules is None else {p: tuple(c) for p, c in rules.allowed_callers.items()}
    named = _names(intentions, method_rules, quotas)
    for card in rate_cards.cards:
        named |= set(card.services) | set(card.subscriptions_nanos)
    for name in named:
        departments.setdefault(name, Department())  # named in force, so shown declared
    return LivePolicy(
        PolicyDocument(
            departments, intentions, method_rules, quotas, rate_cards, monitoring=monitoring
        ),
        {(e["SourceName"], e["DestinationName"]): e["ID"] for e in entries},
        {key: index for key, (index, _) in texts.items()},
        applied,
        tuple(problems),
    )


def _canonical_quotas(described: dict[str, Any]) -> dict[str, Any]:
    """A QuotaPolicy's description with defaults left out, as validate_policy keeps it."""
    tiers = {}
    for name, fields in described["tiers"].items():
        tiers[name] = {k: v for k, v in fields.items() if not (k == "shadow" and v is False)}
    services = {}
    for destination, rules in described["services"].items():
        kept = {part: rules[part] for part in ("callers", "methods") if rules[part]}
        if kept:
            services[destination] = kept
    data: dict[str, Any] = {"tiers": tiers, "default_tier": described["default_tier"]}
    if services:
        data["services"] = services
    return data


def _names(
    intentions: tuple[Intention, ...],
    method_rules: Mapping[str, tuple[str, ...]],
    quotas: Mapping[str, Any] | None,
) -> set[str]:
    names = {i.source for i in intentions} | {i.destination for i in intentions}
    names |= {c for callers in method_rules.values() for c in callers}
    for destination, rules in (quotas or {}).get("services", {}).items():
        names.add(destination)
        names |= set(rules.get("callers", {}))
        names |= {c for assigned in rules.get("methods", {}).values() for c in assigned}
    return names - {"*"}
