"""The molecule scenarios under molecule/ and how the tests run one: `molecule test -s
NAME` (destroy, create, converge, idempotence, verify, destroy; the sequence is set once
in molecule/config.yml). Two test files share them out, so that the two pytest workers
each take one half: the container scenarios (tests/molecule/test_scenarios.py) and the
ones on the controller, sandbox_tls_ca and the AWS roles against the AWS stand-in
(tests/molecule/test_controller_scenarios.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
ON_THE_CONTROLLER = sorted(s for s in SCENARIOS if s.startswith("aws_") or s == "sandbox_tls_ca")
IN_CONTAINERS = sorted(set(SCENARIOS) - set(ON_THE_CONTROLLER))


def assert_scenario_passes(scenario: str) -> None:
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
