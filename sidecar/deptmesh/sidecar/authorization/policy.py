"""Who may call whom, and which methods: the pure policy core (no grpc, no Consul).

Two layers, both default deny:

- intentions (Consul's model): source service -> destination service, allow or
  deny; an exact source beats the wildcard `*`;
- method rules the platform team owns: for a method path exactly as grpc
  dispatches it (`/deptmesh.finance.v1.PaymentService/Payout`), the services
  allowed to call it. A method with no rule is open to every service that the
  intentions allow.

A decision names the rule that matched, for the PERMISSION_DENIED ErrorInfo.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AccessPolicy",
    "Decision",
    "Intention",
    "MethodRules",
    "intentions_from_json",
    "method_rules_from_json",
    "parse_method_rules",
]

WILDCARD = "*"
_SERVICE = re.compile(r"[a-z0-9-]{1,63}|\*")
_METHOD_PATH = re.compile(
    r"/[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*"
)


@dataclass(frozen=True, slots=True)
class Intention:
    source: str
    destination: str
    action: Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str  # which rule decided, in words a person can act on


@dataclass(frozen=True, slots=True)
class MethodRules:
    """Method path -> the services allowed to call it."""

    allowed_callers: Mapping[str, frozenset[str]]


def parse_method_rules(document: str) -> MethodRules:
    """A validated rules document, or ValueError saying what is wrong with it.

    The document is JSON: {"methods": {"/pkg.Service/Method": ["svc", ...], ...}}.
    """
    try:
        data = json.loads(document)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"method rules are not JSON: {error}") from error
    if not isinstance(data, dict) or set(data) != {"methods"}:
        raise ValueError('method rules must be an object with exactly one key, "methods"')
    return method_rules_from_json(data["methods"])


def method_rules_from_json(methods: object) -> MethodRules:
    """Validated rules from the decoded value of "methods", or ValueError saying what is wrong."""
    if not isinstance(methods, dict):
        raise ValueError('"methods" must map method paths to lists of services')
    rules: dict[str, frozenset[str]] = {}
    for path, callers in methods.items():
        if not _METHOD_PATH.fullmatch(path):
            raise ValueError(f"{path!r} is not a method path like /pkg.Service/Method")
        if not isinstance(callers, list) or not all(isinstance(c, str) for c in callers):
            raise ValueError(f"callers of {path} must be a list of service names")
        bad = [c for c in callers if not _SERVICE.fullmatch(c)]
        if bad:
            raise ValueError(f"callers of {path}: not service names: {bad}")
        rules[path] = frozenset(callers)
    return MethodRules(rules)


_INTENTION_KEYS = {"source", "destination", "action"}


def intentions_from_json(entries: object) -> list[Intention]:
    """Validated intentions from decoded JSON, or ValueError saying what is wrong.

    Each entry is {"source": "svc" or "*", "destination": "svc", "action": "allow" or
    "deny"}; a (source, destination) pair appears at most once.
    """
    if not isinstance(entries, list):
        raise ValueError('"intentions" must be a list of {source, destination, action} objects')
    intentions: list[Intention] = []
    seen: set[tuple[str, str]] = set()
    for number, entry in enumerate(entries):
        where = f"intentions[{number}]"
        if not isinstance(entry, dict) or set(entry) != _INTENTION_KEYS:
            raise ValueError(
                f"{where} must be an object with exactly the keys action, destination, source"
            )
        source, destination, action = entry["source"], entry["destination"], entry["action"]
        if not isinstance(source, str) or not _SERVICE.fullmatch(source):
            raise ValueError(f"{where}: source {source!r} is not a service name or *")
        if not isinstance(destination, str) or not _SERVICE.fullmatch(destination):
            raise ValueError(f"{where}: destination {destination!r} is not a service name")
        if destination == WILDCARD:
            raise ValueError(f"{where}: destination must name one service, not *")
        if action not in ("allow", "deny"):
            raise ValueError(f'{where}: action {action!r} is not "allow" or "deny"')
        if (source, destination) in seen:
            raise ValueError(f"{where}: {source} -> {destination} appears more than once")
        seen.add((source, destination))
        intentions.append(Intention(source, destination, action))
    return intentions


# Distinct (caller, callee, method) decisions one policy version remembers.
_KNOWN_DECISIONS = 4096


class AccessPolicy:
    """Decides one call. A policy version is immutable (a change builds a new one), so
    each (caller, callee, method) is decided once and then looked up."""

    def __init__(self, intentions: Iterable[Intention], rules: MethodRules) -> None:
        self._intentions = {(i.source, i.destination): i.action for i in intentions}
        self._rules = rules.allowed_callers
        self._decided: dict[tuple[str, str, str], Decision] = {}

    def decide(self, source: str, destination: str, method_path: str) -> Decision:
        key = (source, destination, method_path)
        decision = self._decided.get(key)
        if decision is None:
            decision = self._decide(source, destination, method_path)
            if len(self._decided) >= _KNOWN_DECISIONS:
                self._decided.clear()  # more pairs than a mesh has: start over
            self._decided[key] = decision
        return decision

    def _decide(self, source: str, destination: str, method_path: str) -> Decision:
        action = self._intentions.get((source, destination))
        matched = f"intention {source} -> {destination}"
        if action is None:
            action = self._intentions.get((WILDCARD, destination))
            matched = f"intention * -> {destination}"
        if action is None:
            return Decision(False, f"no intention allows {source} -> {destination} (default deny)")
        if action == "deny":
            return Decision(False, f"{matched} is deny")
        callers = self._rules.get(method_path)
        if callers is None:
            return Decision(True, matched)
        if source in callers or WILDCARD in callers:
            return Decision(True, f"method rule {method_path}")
        return Decision(False, f"method rule {method_path} allows only {sorted(callers)}")
