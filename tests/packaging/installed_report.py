"""Run by a virtual environment's python, `python -I installed_report.py DIST...`: prints
as JSON, for each installed distribution named, which of its files are missing or
changed, where each of its modules is imported from, and its namespace packages.

It runs there, so it imports nothing of deptmesh's or of the tests'.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, PackagePath, distribution
from pathlib import Path
from typing import Any


def _sha256(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _module_name(file: PackagePath) -> str | None:
    if file.suffix != ".py" or file.parts[0] in ("..", "") or file.name == "__main__.py":
        return None
    parts = file.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(name: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 -- every failure is reported, none stops the report
        return {"error": repr(error)}
    return {
        "file": module.__file__,
        "owner": getattr(module, "OWNER", None),
        "path": list(getattr(module, "__path__", [])),
    }


def report(name: str) -> dict[str, Any]:
    try:
        files = distribution(name).files or []
    except PackageNotFoundError:
        return {"installed": False}
    located = [(file, Path(str(file.locate()))) for file in files]
    missing = [str(file) for file, path in located if not path.is_file()]
    changed = [
        str(file)
        for file, path in located
        if file.hash is not None and path.is_file() and _sha256(path) != file.hash.value
    ]
    modules = sorted({module for module in map(_module_name, files) if module})
    # Top-level folders that are no module: namespace packages (`..` holds the scripts).
    top_level = {file.parts[0] for file in files} - {".."}
    namespaces = sorted(
        name for name in top_level if name not in modules and not name.endswith(".dist-info")
    )
    return {
        "installed": True,
        "missing": missing,
        "changed": changed,
        "modules": {module: _imported(module) for module in modules},
        "namespaces": {namespace: _imported(namespace) for namespace in namespaces},
    }


if __name__ == "__main__":
    site_packages = sysconfig.get_paths()["purelib"]
    reports = {name: report(name) for name in sys.argv[1:]}
    print(json.dumps({"site_packages": site_packages, "distributions": reports}))  # noqa: T201
