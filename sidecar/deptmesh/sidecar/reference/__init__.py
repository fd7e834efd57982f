"""The API reference: a static site built from the contracts' descriptors and the policy.

`build_site(out, policy=...)` writes it; `deptmesh docs build OUT/` and the
portal (deptmesh.services.portal) are built on it.
"""

from deptmesh.sidecar.reference.site import build_site

__all__ = ["build_site"]
