"""The ACL system of deptmesh's Consul: default deny, a token per department, and the
platform's and monitoring's tokens.

Consul runs with `acl { enabled = true, default_policy = "deny" }` everywhere
(the dev agent, the test cluster, production): a request without a token is
anonymous and gets nothing. What each token may do:

- a department's (`department_token("hr")`): Consul's service identity for
  hr, so it registers and deregisters hr's instances, obtains hr's Connect leaf
  and no other, and reads the catalog, health and intentions (reading a
  service grants reading the intentions towards it); plus the policy
  `deptmesh-department-hr`: read the policy documents under deptmesh/policy/
  and write its own usage reports under deptmesh/usage/hr/;
- the platform's (`platform_token()`): write every intention and the documents
  under deptmesh/policy/, read usage under deptmesh/usage/ and the catalog; and
  Consul's service identity for `platform`, the platform's mesh identity, so it
  obtains the `platform` Connect leaf (and no department's) to call the usage
  ledger as the one identity that may read every department's usage (`deptmesh
  bill`); with `rotate_connect_ca=True` also operator write, which rotating the
  Connect CA needs;
- monitoring's (`monitoring_token()`): read the catalog and health (services and
  nodes), for Prometheus; no intentions, no KV, no leaf;
- an agent's (`agent_token(node)`, the agent's `acl.tokens.agent`): Consul's
  node identity, so the agent keeps its own node in the catalog.

`AclAdmin` writes these policies and tokens with a management token (the
agents' `acl.tokens.master`, or what `consul acl bootstrap` printed). A Token's
secret never appears in its repr; `write_file` hands it to a service as the
file `--consul-token-file` reads.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryError

__all__ = [
    "PLATFORM_IDENTITY",
    "POLICY_PREFIX",
    "USAGE_PREFIX",
    "AclAdmin",
    "MeshTokens",
    "Token",
    "department_rules",
]

# The KV layout the ACLs guard: the platform's documents and each instance's usage.
POLICY_PREFIX = "deptmesh/policy/"
USAGE_PREFIX = "deptmesh/usage/"
# The platform's mesh identity: its SPIFFE service name, whose leaf its token obtains.
PLATFORM_IDENTITY = "platform"

# Service and node names as Consul and deptmesh know them: nothing else can reach a rule.
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

PLATFORM_RULES = f"""\
service_prefix "" {{
  policy = "read"
  intentions = "write"
}}
node_prefix "" {{
  policy = "read"
}}
key_prefix "{POLICY_PREFIX}" {{
  policy = "write"
}}
key_prefix "{USAGE_PREFIX}" {{
  policy = "read"
}}
"""
# Rotating the Connect CA (PUT /v1/connect/ca/configuration) needs operator write.
CA_ROTATION_RULES = 'operator = "write"\n'
MONITORING_RULES = """\
service_prefix "" {
  policy = "read"
  intentions = "deny"
}
node_prefix "" {
  policy = "read"
}
"""


def _checked(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r} must be 1 to 63 lower-case letters, digits or '-'")
    return name


def department_rules(name: str) -> str:
    """What a department may do beyond its service identity: read the policy documents,
    write its own usage."""
    _checked(name, "department")
    return f"""\
key_prefix "{POLICY_PREFIX}" {{
  policy = "read"
}}
key_prefix "{USAGE_PREFIX}{name}/" {{
  policy = "write"
}}
"""


@dataclass(frozen=True, slots=True)
class Token:
    """A Consul ACL token: its public accessor id and its secret (never in the repr)."""

    accessor_id: str
    secret_id: str = field(repr=False)
    description: str = ""

    def write_file(self, path: Path) -> Path:
        """Writes the secret to `path`, readable by its owner only; returns `path`."""
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(descriptor, 0o600)  # it may have existed with a wider mode
            os.write(descriptor, f"{self.secret_id}\n".encode())
        finally:
            os.close(descriptor)
        return path


@dataclass(frozen=True, slots=True)
class MeshTokens:
    """The tokens a mesh runs with: the platform's, monitoring's and one per department."""

    platform: Token
    monitoring: Token
    departments: Mapping[str, Token]

    def department(self, name: str) -> Token:
        try:
            return self.departments[name]
        except KeyError:
            raise KeyError(f"no token was made for department {name!r}") from None


class AclAdmin:
    """Writes deptmesh's ACL policies and makes its tokens; `registry` holds a management
    token. Policies are written (created or updated by name) once per AclAdmin."""

    def __init__(self, registry: ConsulRegistry) -> None:
        self._registry = registry
        self._written: set[str] = set()

    def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Waits until Consul knows the management token: the leader creates the
        `acl.tokens.master` token once it leads, a moment after it is elected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._registry.acl_token_self()
                return
            except RegistryError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the ACL system was not ready within {timeout}s: {error}"
                    ) from error
            time.sleep(0.05)

    def department_token(self, name: str, *, secret_id: str | None = None) -> Token:
        """A token for department `name` (or any Connect service of that name); see the
        module's docstring. `secret_id` restores a token with a known secret."""
        policy = f"deptmesh-department-{_checked(name, 'department')}"
        self._policy(policy, department_rules(name), f"what department {name} may do")
        return self._token(
            f"deptmesh department {name}",
            policies=[policy],
            service_identities=[name],
            secret_id=secret_id,
        )

    def platform_token(self, *, rotate_connect_ca: bool = False) -> Token:
        """The platform team's token: intentions and policy documents, usage reads, and the
        Connect leaf of the platform's mesh identity (PLATFORM_IDENTITY)."""
        self._policy("deptmesh-platform", PLATFORM_RULES, "the platform team's policy writes")
        policies = ["deptmesh-platform"]
        if rotate_connect_ca:
            self._policy("deptmesh-connect-ca", CA_ROTATION_RULES, "rotating the Connect CA")
            policies.append("deptmesh-connect-ca")
        return self._token(
            "deptmesh platform", policies=policies, service_identities=[PLATFORM_IDENTITY]
        )

    def monitoring_token(self) -> Token:
        """A read-only token for Prometheus: the catalog and health, nothing else."""
        self._policy("deptmesh-monitoring", MONITORING_RULES, "catalog and health, read only")
        return self._token("deptmesh monitoring", policies=["deptmesh-monitoring"])

    def agent_token(
        self, node: str, *, datacenter: str = "dc1", secret_id: str | None = None
    ) -> Token:
        """The token agent `node` runs with (its `acl.tokens.agent`)."""
        return self._token(
            f"deptmesh agent {_checked(node, 'node')}",
            node_identities=[(node, datacenter)],
            secret_id=secret_id,
        )

    def mesh_tokens(self, departments: Iterable[str]) -> MeshTokens:
        """The platform's and monitoring's tokens, and one for each department."""
        return MeshTokens(
            platform=self.platform_token(),
            monitoring=self.monitoring_token(),
            departments={name: self.department_token(name) for name in departments},
        )

    def revoke(self, token: Token) -> None:
        """Deletes the token: from then on Consul refuses it ("ACL not found")."""
        self._registry.acl_delete_token(token.accessor_id)

    def _policy(self, name: str, rules: str, description: str) -> None:
        if name in self._written:
            return
        existing = {p["Name"]: p["ID"] for p in self._registry.acl_policies()}
        self._registry.acl_write_policy(
            {"Name": name, "Description": description, "Rules": rules}, existing.get(name)
        )
        self._written.add(name)

    def _token(
        self,
        description: str,
        *,
        policies: Iterable[str] = (),
        service_identities: Iterable[str] = (),
        node_identities: Iterable[tuple[str, str]] = (),
        secret_id: str | None = None,
    ) -> Token:
        body: dict[str, Any] = {
            "Description": description,
            "Policies": [{"Name": name} for name in policies],
            "ServiceIdentities": [{"ServiceName": name} for name in service_identities],
            "NodeIdentities": [
                {"NodeName": node, "Datacenter": datacenter} for node, datacenter in node_identities
            ],
        }
        if secret_id is not None:
            body["SecretID"] = secret_id
        created = self._registry.acl_create_token(body)
        return Token(created["AccessorID"], created["SecretID"], description)
