"""Where a service's access policy comes from. Each source is a `PolicySource` (see
server/): a callable returning the AccessPolicy in force, cheap to call, as
the authorization stage calls it on every call.

- ConsulAccessPolicy: Consul intentions and a method-rules document in Consul KV,
  both watched, so a change applies to open connections at once. A method-rules
  document that does not validate is rejected with a log event
  (`method_rules_rejected`) and the last good one stays in force. No document
  means no method rules. Consul shows a token only the intentions it may read,
  so a token that may read none leaves every call denied; one it refuses
  outright is logged once (`registry_refused`) and the last good policy stays.
- FileAccessPolicy: intentions and method rules in one JSON file, for running
  without Consul. The file is looked at again at most once a second (by the call
  that finds the second has passed) and applied when its content changed; a file
  that cannot be read or does not validate is logged (`access_policy_rejected`)
  and the last good policy stays in force. At start, a bad file is an error.

The policy file (the company's is written by
`python -m deptmesh.services.intentions PATH`):

    {
      "intentions": [
        {"source": "reimbursement", "destination": "finance", "action": "allow"},
        {"source": "*", "destination": "hr", "action": "deny"}
      ],
      "methods": {
        "/deptmesh.finance.v1.PaymentService/Payout": ["reimbursement"]
      }
    }

Both keys are required and no other is allowed. "intentions" lists who may call
whom: source is a service name or `*`, destination a service name, action
"allow" or "deny", each (source, destination) pair at most once. "methods" maps a
method path exactly as grpc dispatches it to the services allowed to call it
(the same as the Consul method-rules document). Everything else is denied.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from deptmesh.registry.acl import POLICY_PREFIX
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.watch import follow
from deptmesh.sidecar.authorization.policy import (
    AccessPolicy,
    Intention,
    MethodRules,
    intentions_from_json,
    method_rules_from_json,
    parse_method_rules,
)
from deptmesh.sidecar.control_plane import asking_consul
from deptmesh.sidecar.documents import MAX_DOCUMENT_BYTES, FileDocument

__all__ = [
    "MAX_POLICY_FILE_BYTES",
    "METHOD_RULES_KEY",
    "ConsulAccessPolicy",
    "FileAccessPolicy",
    "parse_policy_document",
]

# Under the prefix every department's token may read and only the platform's may write.
METHOD_RULES_KEY = f"{POLICY_PREFIX}method-rules"
_log = structlog.get_logger("deptmesh.sidecar")

MAX_POLICY_FILE_BYTES = MAX_DOCUMENT_BYTES
_POLICY_KEYS = {"intentions", "methods"}


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
        with asking_consul("the intentions and method rules"):
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


def parse_policy_document(document: str | bytes) -> tuple[list[Intention], MethodRules]:
    """The intentions and method rules of a policy file, or ValueError saying what is wrong."""
    try:
        data = json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"the access policy is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError('the access policy must be an object with "intentions" and "methods"')
    if set(data) - _POLICY_KEYS:
        raise ValueError(
            f"the access policy has unknown keys {sorted(set(data) - _POLICY_KEYS)}:"
            ' only "intentions" and "methods" are allowed'
        )
    if _POLICY_KEYS - set(data):
        raise ValueError(f"the access policy lacks {sorted(_POLICY_KEYS - set(data))}")
    return intentions_from_json(data["intentions"]), method_rules_from_json(data["methods"])


def _access_policy(content: bytes) -> AccessPolicy:
    return AccessPolicy(*parse_policy_document(content))


class FileAccessPolicy(FileDocument[AccessPolicy]):
    """An authorization PolicySource backed by a policy file; call it for the current policy.

    Raises OSError or ValueError at construction when the file cannot be read or
    does not validate. Afterwards a bad file never replaces the last good policy
    (see deptmesh.sidecar.documents.FileDocument).
    """

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            path, _access_policy, name="access_policy", check_interval=check_interval, clock=clock
        )
