"""Every molecule scenario under molecule/: destroy, create, converge, idempotence,
verify, destroy (the sequence is set once in molecule/config.yml).

Scenarios are discovered, so a new role's scenario joins the suite by existing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def test_scenarios_are_found() -> None:
    assert "sandbox_hosts" in SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={
            **os.environ,
            # molecule calls ansible-config and ansible-playbook by name.
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "NO_COLOR": "1",
            "PY_COLORS": "0",
            "ANSIBLE_FORCE_COLOR": "0",
        },
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-80:])
    assert result.returncode == 0, f"molecule test -s {scenario} failed:\n{tail}"
