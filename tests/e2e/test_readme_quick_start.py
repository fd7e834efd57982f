"""The README's quick start, run as written: `deptmesh dev up`, the `deptmesh call`, `dev down`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    """The commands of the README's block that starts with `deptmesh dev up`'s activation."""
    readme = (REPOSITORY / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    [block] = [block for block in blocks if "deptmesh dev up" in block and "deptmesh call" in block]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_quick_start_works_as_written(tmp_path):
    """Its commands, in one shell from the repository's root, bring a local mesh up, call hr
    as reimbursement (the employee comes back as JSON) and take the mesh down again."""
    commands = quick_start_commands()
    assert commands[-1] == "deptmesh dev down"
    *up_and_call, down = commands
    environment = {
        **os.environ,
        "DEPTMESH_DEV_DIR": str(tmp_path / "dev"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    try:
        ran = subprocess.run(
            ["bash", "-ec", "\n".join(up_and_call)],
            cwd=REPOSITORY,
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        printed = ran.stdout[ran.stdout.rindex("\n{") + 1 :]
        employee = json.loads(printed)["employee"]
        assert (employee["employee_id"], employee["manager_id"]) == ("E1002", "E1001")
    finally:
        stopped = subprocess.run(
            ["bash", "-ec", ". .venv/bin/activate\n" + down],
            cwd=REPOSITORY,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not (tmp_path / "dev" / "mesh.json").exists()
