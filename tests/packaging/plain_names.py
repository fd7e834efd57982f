"""A small package of someone else's that takes the generic top-level names deptmesh once did."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MODULES", "NAME", "write_project"]

NAME = "plain-names"
MODULES = ("registry", "services", "sidecar")


def write_project(directory: Path) -> Path:
    """Writes its source tree (built by hatchling, like deptmesh) into `directory`."""
    directory.mkdir(parents=True)
    (directory / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["hatchling>=1.25"]\n'
        'build-backend = "hatchling.build"\n'
        "[project]\n"
        f'name = "{NAME}"\n'
        'version = "1.0"\n'
        "[tool.hatch.build.targets.wheel]\n"
        f"packages = {list(MODULES)!r}\n".replace("'", '"')
    )
    for module in MODULES:
        (directory / module).mkdir()
        (directory / module / "__init__.py").write_text(f'OWNER = "{NAME}"\n')
    # The names deptmesh's own modules had before they moved under deptmesh.
    (directory / "services" / "hr.py").write_text(f'OWNER = "{NAME}"\n')
    return directory
