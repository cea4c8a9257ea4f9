"""Run a module, or a role, the way a playbook does: one play on localhost, run by the
virtualenv's ansible-playbook with the repository's ansible.cfg. The one way the tests
do this, so every test runs its module under the same settings.

Each play is written to a 0600 file (its arguments may hold secrets). With
``json_output`` the json callback prints the results, and ``task_result`` reads one back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def write_play(path: Path, tasks: list[dict[str, Any]], **play: Any) -> Path:
    """A play of these tasks on localhost (extra play keys such as module_defaults)."""
    if not ANSIBLE_PLAYBOOK.is_file():
        raise AssertionError(f"ansible-playbook not found at {ANSIBLE_PLAYBOOK}")
    document = [
        {"name": "Run", "hosts": "localhost", "gather_facts": False, **play, "tasks": tasks}
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
    return path


def command(playbook: Path, *options: str | Path) -> list[str]:
    """ansible-playbook on localhost, with this Python as the module's interpreter."""
    return [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        *(str(option) for option in options),
        str(playbook),
    ]


def environment(
    *, json_output: bool = False, base: dict[str, str] | None = None, **extra: str
) -> dict[str, str]:
    """The run's environment: ``base`` (os.environ by default) and the Ansible settings."""
    env = {
        **(os.environ if base is None else base),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{ANSIBLE_PLAYBOOK.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if json_output:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    env.update(extra)
    return env


def run(
    playbook: Path,
    *options: str | Path,
    json_output: bool = False,
    env: dict[str, str] | None = None,
    base_env: dict[str, str] | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(playbook, *options),
        cwd=ROOT,
        env=environment(json_output=json_output, base=base_env, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def task_results(process: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Each task's localhost result, from the json callback's output."""
    try:
        tasks = json.loads(process.stdout)["plays"][0]["tasks"]
        return [task["hosts"]["localhost"] for task in tasks]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(
            f"no task results from ansible-playbook (rc {process.returncode}):\n"
            f"{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
        ) from exc


@dataclass
class ModuleRun:
    """One ansible-playbook process and its module's result."""

    rc: int
    stdout: str
    stderr: str
    result: dict[str, Any]

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))
