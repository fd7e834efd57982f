"""Where a local mesh keeps everything: one directory, its files named here once.

The directory is `deptmesh.registry.local_mesh.local_mesh_directory()`
($DEPTMESH_DEV_DIR, else $XDG_STATE_HOME/deptmesh/dev). In it: `mesh.json` and
`tokens/` (the local mesh as other commands find it, local_mesh.py), `dev.json`
(the processes `dev up` started, for `status` and `down`), `consul/` (the
agent's config with its management token, mode 0600, its log, the management
token on its own), per department its log and its SQLite database, and
`monitoring/` (Prometheus's and Alertmanager's configurations and data; their
logs beside the departments', their URLs in `monitoring.json`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deptmesh.sidecar.cli.monitor import MONITORING_FILE

__all__ = ["MeshLayout"]


@dataclass(frozen=True, slots=True)
class MeshLayout:
    directory: Path

    @property
    def record(self) -> Path:
        return self.directory / "dev.json"

    @property
    def lock(self) -> Path:
        return self.directory / "dev.lock"

    @property
    def mesh_description(self) -> Path:
        """The file local_mesh.py reads to find the mesh (written by write_local_mesh)."""
        return self.directory / "mesh.json"

    @property
    def tokens(self) -> Path:
        return self.directory / "tokens"

    def token(self, identity: str) -> Path:
        return self.tokens / f"{identity}.token"

    @property
    def consul(self) -> Path:
        return self.directory / "consul"

    @property
    def consul_config(self) -> Path:
        return self.consul / "config.json"

    @property
    def consul_log(self) -> Path:
        return self.consul / "consul.log"

    @property
    def management_token(self) -> Path:
        return self.consul / "management.token"

    @property
    def monitoring(self) -> Path:
        """Prometheus's and Alertmanager's configurations and data (dev/monitoring.py)."""
        return self.directory / "monitoring"

    @property
    def monitoring_description(self) -> Path:
        """Their URLs, for `deptmesh alerts` (deptmesh.sidecar.cli.monitor)."""
        return self.directory / MONITORING_FILE

    def log(self, department: str) -> Path:
        return self.directory / f"{department}.log"

    def database(self, department: str) -> Path:
        return self.directory / f"{department}.db"

    def owned_paths(self, departments: tuple[str, ...]) -> list[Path]:
        """Everything a local mesh may have made here, for `down --purge`: only these are
        removed, never the directory's other contents (it may be one the user named)."""
        databases = [self.database(name) for name in departments]
        return [
            self.record,
            self.lock,
            self.mesh_description,
            self.tokens,
            self.consul,
            self.monitoring,
            self.monitoring_description,
            *(self.log(name) for name in (*departments, "prometheus", "alertmanager", "portal")),
            *databases,
            *(
                database.with_name(database.name + suffix)
                for database in databases
                for suffix in ("-wal", "-shm", "-journal")
            ),
        ]
