"""The company's policy: company_policy.toml beside this module, shipped in the package.

The file holds the departments, the intentions, the method rules and the
quota tiers (its schema: deptmesh.sidecar.policy_document.schema). It is
checked and applied with `deptmesh policy check|apply FILE`; code that sets up
a mesh (the demo, `deptmesh dev up`, tests) applies it with
`apply_company_policy`, and may add intentions for identities of its own (a
test client, the demo's console), which are then declared as departments too.
"""

from __future__ import annotations

from importlib.resources import files

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.policy_document import (
    Change,
    PolicyDocument,
    apply_policy,
    parse_policy_text,
    validate_policy,
)

__all__ = [
    "POLICY_FILE",
    "Extra",
    "apply_company_policy",
    "company_policy",
    "company_policy_text",
]

POLICY_FILE = "company_policy.toml"

# An extra intention: (source, destination, "allow" or "deny").
Extra = tuple[str, str, str]


def company_policy_text() -> str:
    return files("deptmesh.services").joinpath(POLICY_FILE).read_text(encoding="utf-8")


def company_policy(*extra: Extra) -> PolicyDocument:
    """The company's policy plus `extra` intentions (PolicyDocumentInvalid, a ValueError,
    if one is not valid)."""
    document = parse_policy_text(company_policy_text(), name=POLICY_FILE)
    if not extra:
        return document
    data = document.to_data()
    for source, destination, action in extra:
        for name in {source, destination} - {"*"}:
            data["departments"].setdefault(name, {})
        data["intentions"].append({"source": source, "destination": destination, "action": action})
    # The file's method paths were checked against the contracts just above.
    return validate_policy(data, known_method=lambda _: True)


def apply_company_policy(registry: ConsulRegistry, *extra: Extra) -> tuple[Change, ...]:
    """Makes the company's policy (plus `extra` intentions) the one in force; the changes
    made. `registry` asks with the platform's token, the only one that may write it."""
    return apply_policy(registry, company_policy(*extra))
