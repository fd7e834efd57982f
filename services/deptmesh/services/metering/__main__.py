"""`python -m deptmesh.services.metering --db PATH --consul-address A`."""

from __future__ import annotations

import sys

from deptmesh.services.metering.app import METERING
from deptmesh.sidecar import run_department

if __name__ == "__main__":
    sys.exit(run_department(METERING))
