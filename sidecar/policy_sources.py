"""Where a service's access policy comes from: Consul intentions and a method-rules
document in Consul KV, both watched, so a change applies to open connections at once.

A method-rules document that does not validate is rejected with a log event and
the last good one stays in force. No document means no method rules.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from registry.consul import ConsulRegistry
from registry.watch import follow
from sidecar.authorization import AccessPolicy, Intention, MethodRules, parse_method_rules

__all__ = ["METHOD_RULES_KEY", "ConsulAccessPolicy"]

METHOD_RULES_KEY = "deptmesh/policy/method-rules"
_log = structlog.get_logger("deptmesh.sidecar")


def _intentions(entries: list[dict[str, Any]]) -> list[Intention]:
    return [
        Intention(
            e["SourceName"], e["DestinationName"], "allow" if e["Action"] == "allow" else "deny"
        )
        for e in entries
    ]


class ConsulAccessPolicy:
    """An authorization PolicySource backed by Consul; call it for the current policy."""

    def __init__(self, registry: ConsulRegistry, *, rules_key: str = METHOD_RULES_KEY) -> None:
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        intentions_index, entries = registry.intentions(0, 0)
        rules_index, document = registry.kv_value(rules_key, 0, 0)
        self._intentions = _intentions(entries)
        self._rules = MethodRules({})
        self._policy = AccessPolicy(self._intentions, self._rules)
        self._apply_rules(document)
        follow(
            "intentions",
            registry.intentions,
            self._intentions_changed,
            self._stopping,
            index=intentions_index,
        )
        follow(
            "method-rules",
            lambda index, wait: registry.kv_value(rules_key, index, wait),
            self._apply_rules,
            self._stopping,
            index=rules_index,
        )

    def __call__(self) -> AccessPolicy:
        return self._policy

    def stop(self) -> None:
        self._stopping.set()

    def _intentions_changed(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            self._intentions = _intentions(entries)
            self._policy = AccessPolicy(self._intentions, self._rules)
        _log.info("intentions_changed", count=len(entries))

    def _apply_rules(self, document: str | None) -> None:
        try:
            rules = MethodRules({}) if document is None else parse_method_rules(document)
        except ValueError as error:
            _log.error("method_rules_rejected", reason=str(error))
            return  # the last good rules stay in force
        with self._lock:
            self._rules = rules
            self._policy = AccessPolicy(self._intentions, self._rules)
        _log.info("method_rules_applied", methods=len(rules.allowed_callers))
