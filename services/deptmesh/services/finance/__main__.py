"""`python -m services.finance --port 0 --db PATH [--seed-demo-data]`."""

from __future__ import annotations

import sys

from deptmesh.services.finance.app import NAME, build
from deptmesh.sidecar.host.runner import parse_options, run

if __name__ == "__main__":
    sys.exit(run(NAME, parse_options(NAME, sys.argv[1:]), build))
