"""The contracts: lint clean, and an unannounced breaking change fails the check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "node_modules" / ".bin" / "buf"
PUBLISHED = ROOT / "protos" / "published.binpb"


def buf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), "buf is missing: `make setup` installs it from npm"
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def contracts_copy(tmp_path) -> Path:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos", ignore=shutil.ignore_patterns("*.py*"))
    return tmp_path


class TestContracts:
    def test_lint_passes(self):
        """The committed contracts pass buf lint (STANDARD)."""
        result = buf("lint", cwd=ROOT)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_unchanged_contracts_are_not_breaking(self, contracts_copy):
        """The current contracts are compatible with the published image."""
        result = buf("breaking", "--against", str(PUBLISHED), cwd=contracts_copy)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_removed_field_is_a_breaking_change(self, contracts_copy):
        """Deleting a field without publishing fails buf breaking and names the field."""
        hr_proto = contracts_copy / "protos" / "deptmesh" / "hr" / "v1" / "hr.proto"
        text = hr_proto.read_text()
        assert "  string title = 6;\n" in text
        hr_proto.write_text(text.replace("  string title = 6;\n", ""))

        result = buf("breaking", "--against", str(PUBLISHED), cwd=contracts_copy)

        assert result.returncode != 0
        assert "title" in result.stdout + result.stderr
