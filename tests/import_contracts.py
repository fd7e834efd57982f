"""A contract type for import-linter: private modules stay inside their package.

A module whose name starts with one underscore (`deptmesh.sidecar.chain._sync`)
is an implementation detail of its package (`deptmesh.sidecar.chain`): only
modules inside that package may import it. Everything else (other packages,
bench/, tests/) goes through the package's public modules. Registered in
pyproject.toml's [tool.importlinter] as `private_modules`.
"""

from __future__ import annotations

from importlinter import Contract, ContractCheck, output


def _owner(module: str) -> str | None:
    """The package a private module belongs to: the parent of its first private part."""
    parts = module.split(".")
    for depth, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:depth])
    return None


class PrivateModulesContract(Contract):
    def check(self, graph, verbose):  # type: ignore[no-untyped-def]
        broken = []
        for imported in sorted(graph.modules):
            owner = _owner(imported)
            if owner is None:
                continue
            for importer in sorted(graph.find_modules_that_directly_import(imported)):
                if importer != owner and not importer.startswith(owner + "."):
                    broken.append((importer, imported))
        output.verbose_print(verbose, f"{len(broken)} imports of private modules from outside")
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check):  # type: ignore[no-untyped-def]
        for importer, imported in check.metadata["broken"]:
            output.print_error(f"{importer} imports the private module {imported}")
