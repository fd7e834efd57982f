"""Acting as an identity from the command line: which Consul agent and token to ask, the
identity's Connect leaf, and the one-line refusals the commands end with.

An explicit `--consul-address`, else $CONSUL_HTTP_ADDR, names the agent; the
token then comes from `--consul-token-file`, $CONSUL_HTTP_TOKEN_FILE or
$CONSUL_HTTP_TOKEN (deptmesh.registry.credentials). Given neither address, the
local mesh `deptmesh dev up` recorded is used when one is up: its agent, and
the token it made for the identity (unless a token file is given). Without
any of these, the agent at Consul's own default address.

Exit statuses: EXIT_FAILED (1) when the mesh or the service said no (Consul
unreachable or refusing the token, a failed call); EXIT_BAD_INVOCATION (2) when
the command line itself is wrong (a malformed address, a file that cannot be read).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from deptmesh.registry.consul import DEFAULT_ADDRESS, ConsulRegistry
from deptmesh.registry.local_mesh import LocalMesh, find_local_mesh
from deptmesh.sidecar.errors import ControlPlaneRefused, ControlPlaneUnavailable
from deptmesh.sidecar.flags import host_port
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity

__all__ = [
    "EXIT_BAD_INVOCATION",
    "EXIT_FAILED",
    "CommandRefused",
    "ConsulAccess",
    "add_consul_arguments",
    "bad_invocation",
    "consul_access",
    "leaf_of",
]

EXIT_FAILED = 1
EXIT_BAD_INVOCATION = 2
_HOST_PORT = re.compile(r"(?:http://)?(?:\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]*):\d{1,5}")


class CommandRefused(Exception):
    """Ends a command: what to print (its first line prefixed with the command's name)
    and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def bad_invocation(message: str) -> CommandRefused:
    return CommandRefused(message, EXIT_BAD_INVOCATION)


@dataclass(frozen=True, slots=True)
class ConsulAccess:
    """The agent's HOST:PORT; the token file to present (None: the environment's token);
    the local mesh they came from, if they did."""

    address: str
    token_file: Path | None
    local_mesh: LocalMesh | None = None


def consul_access(
    identity: str,
    address: str | None,
    token_file: Path | None,
    environ: Mapping[str, str] = os.environ,
) -> ConsulAccess:
    if address:
        return ConsulAccess(address, token_file)
    if environ.get("CONSUL_HTTP_ADDR"):
        return ConsulAccess(environ["CONSUL_HTTP_ADDR"], token_file)
    mesh = find_local_mesh(environ)
    if mesh is None:
        return ConsulAccess(DEFAULT_ADDRESS, token_file)
    return ConsulAccess(mesh.consul_address, token_file or mesh.token_file(identity), mesh)


def add_consul_arguments(command: object) -> None:
    """--consul-address and --consul-token-file, as a command acting as --as takes them."""
    add = command.add_argument  # type: ignore[attr-defined]
    add(
        "--consul-address",
        type=host_port,
        help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR, else the local mesh of"
        " `deptmesh dev up`, else 127.0.0.1:8500)",
    )
    add(
        "--consul-token-file",
        type=Path,
        help="the file holding IDENTITY's Consul ACL token (default $CONSUL_HTTP_TOKEN_FILE,"
        " else $CONSUL_HTTP_TOKEN; with the local mesh, the token it made for IDENTITY)",
    )


def leaf_of(
    identity: str, access: ConsulAccess, opened: ExitStack
) -> tuple[ConsulRegistry, ConsulConnectIdentity]:
    """The registry `access` names and `identity`'s Connect leaf from it, kept current
    until `opened` closes; CommandRefused when either cannot be had."""
    if not _HOST_PORT.fullmatch(access.address):
        raise bad_invocation(f"the Consul address {access.address!r} is not HOST:PORT")
    try:
        registry = ConsulRegistry(access.address, token_file=access.token_file)
    except ValueError as error:  # a token file that cannot be used
        raise bad_invocation(str(error)) from None
    try:
        leaf = ConsulConnectIdentity(registry, identity)
    except ControlPlaneRefused as error:
        hint = (
            f"; the local mesh in {access.local_mesh.directory} has no token for {identity}"
            if access.local_mesh is not None and access.token_file is None
            else f"; give {identity}'s token with --consul-token-file"
        )
        raise CommandRefused(f"{error}{hint}", EXIT_FAILED) from None
    except ControlPlaneUnavailable as error:
        raise CommandRefused(str(error), EXIT_FAILED) from None
    opened.callback(leaf.stop)
    return registry, leaf
