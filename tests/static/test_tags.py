"""Tags pick what is configured on the web hosts: --tags web_app or --tags web_nginx
runs that role's tasks only, while provisioning, the contract check and the final check
of the page always run (playbooks/site.yml), so a tagged run still has its hosts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ROLE_TASK = re.compile(r"^\s+cachestack\.aws\.(\w+) : (?!Validating arguments)(.*?)\tTAGS", re.M)


def listed_tasks(*options: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "site.yml", "--list-tasks", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def roles_listed(output: str) -> set[str]:
    return {match[0] for match in ROLE_TASK.findall(output)}


@pytest.mark.parametrize(("tag", "other"), [("web_app", "web_nginx"), ("web_nginx", "web_app")])
def test_a_role_tag_runs_that_role_and_what_always_runs(tag: str, other: str) -> None:
    output = listed_tasks("--tags", tag)
    listed = roles_listed(output)
    assert tag in listed, output
    assert other not in listed, output
    # Provisioning, the contract check and the page check are still there.
    assert "sandbox_hosts" in listed, output
    assert "Set the endpoints contract" in output
    assert "Note that the endpoints contract is complete" in output
    assert "Check that the page came through the cache" in output


def test_without_tags_every_role_runs() -> None:
    assert {"web_app", "web_nginx", "sandbox_hosts", "common"} <= roles_listed(listed_tasks())
