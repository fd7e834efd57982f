"""`python -m deptmesh.sidecar.declared_errors IMAGE`: checks the error declarations of
the contracts in IMAGE (`buf build -o IMAGE`), as `make check-protos` runs it.

Prints one line per problem and exits 1 when there is one; silent and 0 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf.descriptor_pb2 import FileDescriptorSet

from deptmesh.sidecar.declared_errors.rules import contract_problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m deptmesh.sidecar.declared_errors IMAGE\n")
        return 2
    # A buf image is a FileDescriptorSet on the wire (its extra fields are skipped).
    image = FileDescriptorSet.FromString(Path(argv[0]).read_bytes())
    problems = contract_problems(image.file)
    for problem in problems:
        sys.stderr.write(f"{problem}\n")
    return 1 if problems else 0


sys.exit(main(sys.argv[1:]))
