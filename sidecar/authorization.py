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

__all__ = ["AccessPolicy", "Decision", "Intention", "MethodRules", "parse_method_rules"]

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
    except json.JSONDecodeError as error:
        raise ValueError(f"method rules are not JSON: {error}") from error
    if not isinstance(data, dict) or set(data) != {"methods"}:
        raise ValueError('method rules must be an object with exactly one key, "methods"')
    methods = data["methods"]
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


class AccessPolicy:
    """Decides one call; built once per policy version, so a decision is two lookups."""

    def __init__(self, intentions: Iterable[Intention], rules: MethodRules) -> None:
        self._intentions = {(i.source, i.destination): i.action for i in intentions}
        self._rules = rules.allowed_callers

    def decide(self, source: str, destination: str, method_path: str) -> Decision:
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
