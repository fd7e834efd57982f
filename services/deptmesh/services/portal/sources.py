"""Where the portal reads the mesh from, decided once when it starts.

Consul (the catalog, the quota policy) and the usage ledger are asked as one
mesh identity, the platform's by default: it may read the catalog and every
department's usage and statements. The trace store is a file; Alertmanager a
URL. Any of them may be absent: the page that needs it says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deptmesh.registry.acl import PLATFORM_IDENTITY
from deptmesh.registry.local_mesh import find_local_mesh, local_mesh_directory
from deptmesh.sidecar.cli.acting_as import consul_access
from deptmesh.sidecar.cli.monitor import MONITORING_FILE
from deptmesh.sidecar.tracing.store import default_store_path

__all__ = ["PortalSources", "local_sources"]


@dataclass(frozen=True, slots=True)
class PortalSources:
    """The agent's HOST:PORT and the identity's token file (None: the environment's
    token); the trace store's path; Alertmanager's URL (None: no monitoring)."""

    consul_address: str
    token_file: Path | None
    trace_store: Path
    alertmanager_url: str | None = None
    identity: str = PLATFORM_IDENTITY


def local_sources(
    *,
    identity: str = PLATFORM_IDENTITY,
    consul_address: str | None = None,
    token_file: Path | None = None,
    trace_store: Path | None = None,
    alertmanager_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> PortalSources:
    """What is given, else what the commands use: $CONSUL_HTTP_ADDR or the local mesh of
    `deptmesh dev up` and its token for `identity`, the default trace store, and the
    local mesh's Alertmanager when it runs one."""
    access = consul_access(identity, consul_address, token_file, environ)
    if alertmanager_url is None and find_local_mesh(environ) is not None:
        alertmanager_url = _recorded_alertmanager(local_mesh_directory(environ) / MONITORING_FILE)
    return PortalSources(
        consul_address=access.address,
        token_file=access.token_file,
        trace_store=trace_store or default_store_path(environ),
        alertmanager_url=alertmanager_url,
        identity=identity,
    )


def _recorded_alertmanager(path: Path) -> str | None:
    try:
        recorded = json.loads(path.read_text())
        return str(recorded["alertmanager_url"]).rstrip("/")
    except (OSError, ValueError, KeyError, TypeError):
        return None
