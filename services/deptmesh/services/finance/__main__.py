"""`python -m deptmesh.services.finance --db PATH [--seed-demo-data] [--consul-address A]`."""

from __future__ import annotations

import sys

from deptmesh.services.finance.app import FINANCE
from deptmesh.sidecar import run_department

if __name__ == "__main__":
    sys.exit(run_department(FINANCE))
