"""`deptmesh policy check|apply|show`: the mesh's policy as code.

- `check FILE` validates the document (every problem as `FILE:LINE: key.path:
  what`, exit 1), then, when a Consul agent answers with a token, prints what
  applying it would change (exit 1 if a rate card change would reprice a
  month already begun, which apply refuses);
- `apply FILE` validates it and makes it the policy in force, all of it or
  nothing, never interleaved with another apply (deptmesh.sidecar.policy_document.apply);
- `show` prints the policy in force, in the file's format.

The agent is --consul-address, else $CONSUL_HTTP_ADDR, else the local mesh's
(`deptmesh dev up`), else 127.0.0.1:8500; the token --consul-token-file, else
$CONSUL_HTTP_TOKEN_FILE or $CONSUL_HTTP_TOKEN, else the local mesh's platform
token. Writing the policy takes the platform's token.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deptmesh.sidecar.flags import host_port

if TYPE_CHECKING:
    from deptmesh.registry.consul import ConsulRegistry
    from deptmesh.sidecar.policy_document import LivePolicy, PolicyDocument

__all__ = ["add_policy_command"]

# The identity whose token the local mesh keeps for writing the policy.
_PLATFORM = "platform"


def add_policy_command(commands: Any) -> None:
    """Adds `deptmesh policy` and its three subcommands to the command's subparsers."""
    policy = commands.add_parser(
        "policy", help="check, apply or show the mesh's policy (intentions, method rules, quotas)"
    )
    actions = policy.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="validate a policy file and show what applying it would change"
    )
    check.set_defaults(run=_check)
    apply = actions.add_parser("apply", help="make a policy file the policy in force")
    apply.set_defaults(run=_apply)
    show = actions.add_parser("show", help="print the policy in force, as a policy file")
    show.set_defaults(run=_show)
    for action in (check, apply):
        action.add_argument("file", type=Path, help="the policy file (TOML)")
    for action in (check, apply, show):
        action.add_argument(
            "--consul-address",
            type=host_port,
            help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR, else the local mesh's"
            " from `deptmesh dev up`, else 127.0.0.1:8500)",
        )
        action.add_argument(
            "--consul-token-file",
            type=Path,
            help="the file holding the Consul ACL token (writing takes the platform's;"
            " default $CONSUL_HTTP_TOKEN_FILE, else $CONSUL_HTTP_TOKEN, else the local"
            " mesh's platform token)",
        )


def _registry(args: argparse.Namespace) -> ConsulRegistry:
    """The agent and token the arguments or the environment name, else the local mesh's
    (ValueError naming a token file that cannot be used, or a bad address)."""
    from deptmesh.registry.consul import DEFAULT_ADDRESS, ConsulRegistry
    from deptmesh.registry.local_mesh import find_local_mesh

    address = args.consul_address or os.environ.get("CONSUL_HTTP_ADDR")
    token_file = args.consul_token_file
    if address is None:
        mesh = find_local_mesh()
        if mesh is not None:
            address = mesh.consul_address
            environment_token = any(
                os.environ.get(name) for name in ("CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_TOKEN")
            )
            if token_file is None and not environment_token:
                token_file = mesh.token_file(_PLATFORM)
    return ConsulRegistry(address or DEFAULT_ADDRESS, token_file=token_file)


def _load(args: argparse.Namespace) -> PolicyDocument | None:
    from deptmesh.sidecar.policy_document import PolicyDocumentInvalid, load_policy_file

    try:
        return load_policy_file(args.file)
    except PolicyDocumentInvalid as invalid:
        for line in invalid.lines:
            print(line, file=sys.stderr)
        return None


def _summary(document: PolicyDocument) -> str:
    tiers = len(document.quotas["tiers"]) if document.quotas else 0
    return (
        f"schema {document.schema_version}: {len(document.departments)} departments,"
        f" {len(document.intentions)} intentions, {len(document.method_rules)} method rules,"
        f" {tiers} quota tiers, {len(document.rate_cards.cards)} rate cards"
    )


def _count(changes: Sequence[object]) -> str:
    return f"{len(changes)} change{'' if len(changes) == 1 else 's'}"


def _warn_live(live: LivePolicy) -> None:
    for problem in live.problems:
        print(f"deptmesh policy: warning: live {problem}", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from deptmesh.registry.protocol import RegistryError
    from deptmesh.sidecar.policy_document import (
        PastRateCardChange,
        PolicyApplyError,
        plan_policy,
        render_changes,
    )

    document = _load(args)
    if document is None:
        return 1
    print(f"{args.file}: valid, {_summary(document)}")
    try:
        registry = _registry(args)
        if not registry.has_token:
            print(
                "not compared with the live policy: no Consul token (give --consul-token-file,"
                " or start a local mesh with `deptmesh dev up`)"
            )
            return 0
        plan = plan_policy(registry, document)
    except PastRateCardChange as refused:  # the file is valid, but apply would refuse it
        print(f"{args.file}: {refused}", file=sys.stderr)
        return 1
    except (ValueError, RegistryError, PolicyApplyError) as error:
        print(f"not compared with the live policy: {error}")
        return 0
    _warn_live(plan.live)
    if not plan.changes:
        print(f"no changes: the policy in force at consul {registry.address} is this file's")
        return 0
    print(f"applying it to consul {registry.address} would make {_count(plan.changes)}:")
    print(render_changes(plan.changes))
    return 0


def _apply(args: argparse.Namespace) -> int:
    from deptmesh.registry.protocol import RegistryError, RegistryRefused
    from deptmesh.sidecar.policy_document import (
        PolicyApplyError,
        apply_policy,
        render_changes,
    )

    document = _load(args)
    if document is None:
        print(
            f"deptmesh policy apply: {args.file} is not valid: nothing was applied", file=sys.stderr
        )
        return 1
    try:
        registry = _registry(args)
        changes = apply_policy(registry, document)
    except RegistryRefused as error:
        print(
            f"deptmesh policy apply: {error}; nothing was changed (applying the policy takes"
            " the platform's token)",
            file=sys.stderr,
        )
        return 1
    except (ValueError, RegistryError, PolicyApplyError) as error:
        print(f"deptmesh policy apply: {error}", file=sys.stderr)
        return 1
    if not changes:
        print(
            f"no changes: the policy in force at consul {registry.address} is already {args.file}'s"
        )
        return 0
    print(render_changes(changes))
    print(f"applied {args.file} to consul {registry.address}: {_count(changes)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from deptmesh.registry.protocol import RegistryError
    from deptmesh.sidecar.policy_document import read_live_policy, render_policy

    try:
        registry = _registry(args)
        live = read_live_policy(registry)
    except (ValueError, RegistryError) as error:
        print(f"deptmesh policy show: {error}", file=sys.stderr)
        return 1
    _warn_live(live)
    record = live.applied
    if record.state:
        when = datetime.fromtimestamp(record.at, UTC).isoformat(timespec="seconds")
        how = f"apply serial {record.serial}, {record.state} {when}"
    else:
        how = "never applied with `deptmesh policy apply`"
    print(
        render_policy(
            live.document, header=f"the policy in force at consul {registry.address} ({how})"
        ),
        end="",
    )
    return 0
