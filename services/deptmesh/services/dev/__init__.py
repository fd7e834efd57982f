"""`deptmesh dev up | down | status`: a local mesh for trying deptmesh by hand.

Consul's agent with ACLs (default deny), a token per identity, the company's
policy, and every department, each a detached process that outlives the
command; state, logs and tokens in one directory (`local_mesh_directory()`),
where the commands that use a local mesh (`deptmesh call`) find it. mesh.py
holds what the three commands do, command.py what they print.
"""

from deptmesh.services.dev.layout import MeshLayout
from deptmesh.services.dev.mesh import MeshStatus, ProcessStatus, down, status, up

__all__ = ["MeshLayout", "MeshStatus", "ProcessStatus", "down", "status", "up"]
