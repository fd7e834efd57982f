"""`python -m deptmesh.services.travel --db PATH --consul-address A`."""

from __future__ import annotations

import sys

from deptmesh.services.travel.app import TRAVEL
from deptmesh.sidecar import run_department

if __name__ == "__main__":
    sys.exit(run_department(TRAVEL))
