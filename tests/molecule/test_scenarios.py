"""Every molecule scenario under molecule/: destroy, create, converge, idempotence,
verify, destroy (the sequence is set once in molecule/config.yml).

Scenarios are discovered, so a new role's scenario joins the suite by existing; every
role under roles/ must have one of its name. The container roles run in the locally built
image (molecule/config.yml), sandbox_tls_ca and the AWS roles on the controller, the AWS
roles against the AWS stand-in (molecule/_aws_standin/, whose base.yml each aws_*
molecule.yml links to; it has no molecule.yml of its own, so it is not a scenario).
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


ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
# Roles that never run on their own: common's main refuses to, it only holds pieces the
# other roles include (tasks_from), so it runs in their scenarios.
INCLUDED_ONLY = {"common"}


def test_scenarios_are_found() -> None:
    assert "sandbox_hosts" in SCENARIOS


def test_every_role_has_a_scenario() -> None:
    assert set(ROLES) >= INCLUDED_ONLY, "an INCLUDED_ONLY role is gone: drop it from the list"
    missing = sorted(set(ROLES) - INCLUDED_ONLY - set(SCENARIOS))
    assert not missing, f"roles without a molecule scenario of the same name: {missing}"


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
