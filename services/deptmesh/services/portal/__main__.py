"""`python -m deptmesh.services.portal`: the portal as `deptmesh portal` runs it."""

import sys

from deptmesh.services.portal.command import main

sys.exit(main())
