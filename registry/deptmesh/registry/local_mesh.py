"""Where `deptmesh dev up` keeps its local mesh, so that other commands find it.

The directory is $DEPTMESH_DEV_DIR, else $XDG_STATE_HOME/deptmesh/dev, else
~/.local/state/deptmesh/dev. While a local mesh is up, `mesh.json` there names
its Consul agent's HTTP address, and `tokens/<name>.token` holds the Consul
token of each identity it made (a department, `platform`, `monitoring`), mode
0600. A command given no `--consul-address` (and no $CONSUL_HTTP_ADDR) uses the
local mesh's agent, and no token flag, the token of the identity it acts as.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalMesh", "find_local_mesh", "local_mesh_directory", "write_local_mesh"]

_DESCRIPTION = "mesh.json"


@dataclass(frozen=True)
class LocalMesh:
    directory: Path
    consul_address: str

    @property
    def tokens_directory(self) -> Path:
        return self.directory / "tokens"

    def token_file(self, identity: str) -> Path | None:
        """The file of `identity`'s token, None if the local mesh made none for it."""
        path = self.tokens_directory / f"{identity}.token"
        return path if path.is_file() else None


def local_mesh_directory(environ: Mapping[str, str] = os.environ) -> Path:
    if environ.get("DEPTMESH_DEV_DIR"):
        return Path(environ["DEPTMESH_DEV_DIR"])
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "deptmesh" / "dev"


def find_local_mesh(environ: Mapping[str, str] = os.environ) -> LocalMesh | None:
    """The local mesh that is up, None if there is none."""
    directory = local_mesh_directory(environ)
    try:
        described = json.loads((directory / _DESCRIPTION).read_text())
    except (OSError, ValueError):
        return None
    address = described.get("consul_address") if isinstance(described, dict) else None
    return LocalMesh(directory, address) if isinstance(address, str) else None


def write_local_mesh(directory: Path, consul_address: str) -> LocalMesh:
    """Records a local mesh that is up (its tokens go in `tokens_directory`)."""
    mesh = LocalMesh(directory, consul_address)
    mesh.tokens_directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / _DESCRIPTION).write_text(json.dumps({"consul_address": consul_address}) + "\n")
    return mesh
