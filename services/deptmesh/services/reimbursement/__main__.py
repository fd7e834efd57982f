"""`python -m services.reimbursement --port 0 --db PATH --hr-address A --finance-address B`."""

from __future__ import annotations

import sys

from deptmesh.services.reimbursement.app import NAME, add_arguments, build
from deptmesh.sidecar.host.runner import parse_options, run

if __name__ == "__main__":
    sys.exit(run(NAME, parse_options(NAME, sys.argv[1:], add_arguments), build))
