"""Which Consul agent, and which token, a command acting as one identity asks.

An explicit `--consul-address`, else $CONSUL_HTTP_ADDR, names the agent; the
token then comes from `--consul-token-file`, $CONSUL_HTTP_TOKEN_FILE or
$CONSUL_HTTP_TOKEN (deptmesh.registry.credentials). Given neither address, the
local mesh `deptmesh dev up` recorded is used when one is up: its agent, and
the token it made for the identity (unless a token file is given). Without
any of these, the agent of Consul's own default address.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deptmesh.registry.consul import DEFAULT_ADDRESS
from deptmesh.registry.local_mesh import LocalMesh, find_local_mesh

__all__ = ["ConsulAccess", "consul_access"]


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
