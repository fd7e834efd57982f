"""Finance under a name of the test's choosing, as its own process, for tests that share the
session's Consul agent and must not touch the service named "finance".

    python -m tests.integration.consul.renamed_finance NAME [host flags]

The department is finance's own (its store, servicers and host), only registered
and identified in Consul as NAME.
"""

from __future__ import annotations

import dataclasses
import sys

from deptmesh.services.finance.app import FINANCE
from deptmesh.sidecar import run_department

if __name__ == "__main__":
    name, *argv = sys.argv[1:]
    sys.exit(run_department(dataclasses.replace(FINANCE, name=name), argv))
