"""The ErrorInfo reasons a package's code can raise, read from its source (no import).

A reason is read where it is written: a string literal given as `reason=`, a
module-level string constant given so, or a value of a module-level dict whose
name ends in `_REASONS` (a table of reasons, such as `_REFUSAL_REASONS`). A
`reason=` built from an f-string or a `+` cannot be read: it is reported, so
that it is rewritten as literals. Any other `reason=` expression passes a
reason on that was read elsewhere (another department's, through grpc).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Reasons", "raised_reasons"]


@dataclass
class Reasons:
    """Reason -> where it is written (`file:line`), and the reasons that cannot be read."""

    raised: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def add(self, reason: str, where: str) -> None:
        self.raised.setdefault(reason, []).append(where)


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "literal" assignments."""
    found: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def _read_file(path: Path, shown: str, reasons: Reasons) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = _constants(tree)
    for node in tree.body:  # the tables of reasons
        target = node.targets[0] if isinstance(node, ast.Assign) and node.targets else None
        if (
            isinstance(target, ast.Name)
            and target.id.endswith("_REASONS")
            and isinstance(node.value, ast.Dict)
        ):
            for value in node.value.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    reasons.add(value.value, f"{shown}:{value.lineno}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "reason":
                continue
            value, where = keyword.value, f"{shown}:{keyword.value.lineno}"
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                if value.value:
                    reasons.add(value.value, where)
            elif isinstance(value, ast.Name) and value.id in constants:
                reasons.add(constants[value.id], where)
            elif isinstance(value, ast.JoinedStr | ast.BinOp):
                reasons.unreadable.append(where)


def raised_reasons(package: Path, root: Path) -> Reasons:
    """The reasons the modules under `package` can raise; places shown relative to `root`."""
    reasons = Reasons()
    for path in sorted(package.rglob("*.py")):
        _read_file(path, str(path.relative_to(root)), reasons)
    return reasons
