"""`deptmesh docs build OUT/ [--policy FILE]`: the API reference, written to a folder.

The sidecar builds the site (deptmesh.sidecar.reference); this command lives
here because its default policy, the company's, ships with the services.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deptmesh.services.company_policy import company_policy
from deptmesh.sidecar.policy_document import PolicyDocumentInvalid, load_policy_file
from deptmesh.sidecar.reference import build_site

__all__ = ["EXIT_BAD_POLICY", "build"]

EXIT_BAD_POLICY = 2


def build(args: argparse.Namespace) -> int:
    """Writes the site into args.out; prints its index page's path. Exit 2, saying why,
    when the policy file cannot be read or is not valid."""
    try:
        policy = company_policy() if args.policy is None else load_policy_file(args.policy)
    except PolicyDocumentInvalid as error:
        print(f"deptmesh docs build: {error}", file=sys.stderr)  # noqa: T201 - a command
        return EXIT_BAD_POLICY
    index = build_site(Path(args.out), policy=policy)
    print(f"API reference written: {index}")  # noqa: T201 - a command's result
    return 0
