"""Who may call a method, as a policy says: its intentions, then its method rules.

The same decision the sidecar's authorization makes on every call
(deptmesh.sidecar.authorization.policy.AccessPolicy), asked for every identity
the policy names, and for "any other service" (a `*` intention).
"""

from __future__ import annotations

from dataclasses import dataclass

from deptmesh.sidecar.authorization.policy import WILDCARD, AccessPolicy, MethodRules
from deptmesh.sidecar.policy_document import PolicyDocument

__all__ = ["Callers", "callers_of"]


@dataclass(frozen=True, slots=True)
class Callers:
    """The identities allowed to call one method, whether any other service is, and the
    method rule that narrows the intentions (None without one)."""

    allowed: tuple[str, ...]
    anyone: bool
    method_rule: tuple[str, ...] | None


def callers_of(policy: PolicyDocument, department: str, method_path: str) -> Callers:
    """Who `policy` allows to call `method_path` (/pkg.Service/Method) on `department`."""
    rules = MethodRules({path: frozenset(c) for path, c in policy.method_rules.items()})
    access = AccessPolicy(policy.intentions, rules)
    named = set(policy.departments) | {i.source for i in policy.intentions if i.source != WILDCARD}
    allowed = tuple(
        sorted(name for name in named if access.decide(name, department, method_path).allowed)
    )
    return Callers(
        allowed=allowed,
        anyone=access.decide(WILDCARD, department, method_path).allowed,
        method_rule=policy.method_rules.get(method_path),
    )
