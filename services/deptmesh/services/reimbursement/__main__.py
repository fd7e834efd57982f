"""`python -m deptmesh.services.reimbursement --db PATH --consul-address A`."""

from __future__ import annotations

import sys

from deptmesh.services.reimbursement.app import REIMBURSEMENT
from deptmesh.sidecar import run_department

if __name__ == "__main__":
    sys.exit(run_department(REIMBURSEMENT))
