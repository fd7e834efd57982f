"""The company's access policy for its departments, as company_policy.toml states it.

The intentions (who may call whom; everything else is denied) and the method
rules (which callers may use which methods) of the company's policy file
(deptmesh.services.company_policy), for code that wants only these two: `apply`
writes them to Consul, where the services watch them; without Consul,
`python -m deptmesh.services.intentions PATH` writes them as a policy file for
`--policy-file PATH` (deptmesh.sidecar.authorization.FileAccessPolicy). Either
way changes apply without a restart. `deptmesh policy apply` applies the whole
file (quota tiers too) with check-and-set; prefer it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services.company_policy import Extra, company_policy
from deptmesh.sidecar.authorization.sources import METHOD_RULES_KEY, parse_policy_document

__all__ = [
    "INTENTIONS",
    "METHOD_RULES",
    "Extra",
    "apply",
    "as_policy_document",
    "main",
    "write_policy_file",
]

_POLICY = company_policy()
# (source, destination, action) of every intention in the file.
INTENTIONS: tuple[Extra, ...] = tuple(
    (i.source, i.destination, i.action) for i in _POLICY.intentions
)
# The method-rules document the services read from Consul KV.
METHOD_RULES = {"methods": {path: list(c) for path, c in _POLICY.method_rules.items()}}


def apply(registry: ConsulRegistry, *extra: Extra) -> None:
    """Writes the intentions (plus `extra` ones) and the method rules to Consul; `registry`
    asks with the platform's token, the only one that may write them."""
    for source, destination, action in (*INTENTIONS, *extra):
        registry.set_intention(source, destination, action)
    registry.kv_put(METHOD_RULES_KEY, json.dumps(METHOD_RULES))


def as_policy_document(*extra: Extra) -> dict[str, object]:
    """The intentions (plus `extra` ones) and the method rules as one policy file document."""
    return {
        "intentions": [
            {"source": source, "destination": destination, "action": action}
            for source, destination, action in (*INTENTIONS, *extra)
        ],
        "methods": METHOD_RULES["methods"],
    }


def write_policy_file(path: Path, *extra: Extra) -> None:
    """Writes `as_policy_document(*extra)` to `path`, replacing it in one step.

    The document is validated first (ValueError if an `extra` intention is not
    valid), and a service watching the file never reads it half written.
    """
    text = json.dumps(as_policy_document(*extra), indent=2) + "\n"
    parse_policy_document(text)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from a service's user
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deptmesh.services.intentions",
        description="Writes the company's access policy as a policy file (--policy-file).",
    )
    parser.add_argument("path", type=Path, help="the policy file to write (replaced atomically)")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="SOURCE:DESTINATION",
        help="an extra allow intention, e.g. anonymous:hr for a plaintext development service",
    )
    args = parser.parse_args(argv)
    extra: list[Extra] = []
    for pair in args.allow:
        source, colon, destination = pair.partition(":")
        if not colon or not source or not destination:
            parser.error(f"--allow takes SOURCE:DESTINATION, got {pair!r}")
        extra.append((source, destination, "allow"))
    try:
        write_policy_file(args.path, *extra)
    except ValueError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
