"""Run cachestack.aws.elasticache_replication_group through real ansible-playbook processes.

Each run writes a one-task playbook to the test's tmp_path (0600: it holds the fake auth
token), runs ansible-playbook from the repository root (its ansible.cfg resolves
cachestack.aws from this checkout) against the session moto server of tests/servers/moto.py
through ``module_defaults: group/cachestack.aws.aws`` (endpoint_url and region), with the
ansible.posix.json callback, and returns the task's result. Every test starts from an
empty moto account.

moto alone ignores a new engine version and parameter group: the engine tests
(``run_standin_play``) run against the AWS stand-in of tests/integration/aws
(``moto_compat.py``), which changes them as AWS does and logs its calls.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import localhost_play
from tests.integration.aws.conftest import COMPAT
from tests.servers.moto import (  # noqa: F401  # pylint: disable=unused-import
    REGION,
    aws_client,
    aws_env,
    free_port,
    moto_server,
    reset_moto,
    start_moto,
    stop_moto,
)

ROOT = Path(__file__).resolve().parents[3]
MODULE = "cachestack.aws.elasticache_replication_group"


@dataclass
class Step:
    """One task of a play: the module's arguments and task keywords."""

    args: dict[str, Any]
    check: bool = False
    ignore_errors: bool = False


@dataclass
class PlayRun:
    """One ansible-playbook process and the results of its tasks, in order."""

    rc: int
    stdout: str
    stderr: str
    results: list[dict[str, Any]]


def _task_results(stdout: str) -> list[dict[str, Any]]:
    report = json.loads(stdout[stdout.index("{") :])
    return [dict(task["hosts"]["localhost"]) for task in report["plays"][0]["tasks"]]


@pytest.fixture
def moto(moto_server: str) -> Iterator[str]:  # noqa: F811
    """The moto URL, emptied before the test."""
    reset_moto(moto_server)
    yield moto_server


@pytest.fixture
def elasticache(moto: str) -> Any:
    """A boto3 ElastiCache client on the moto server, for assertions."""
    return aws_client(moto, "elasticache")


def _runner(url: str, tmp_path: Path, prefix: str) -> Callable[..., PlayRun]:
    """run(*steps): one ansible-playbook process running the module once per step."""
    counter = iter(range(1000))

    def run(*steps: Step) -> PlayRun:
        playbook = tmp_path / f"{prefix}-{next(counter)}.yml"
        tasks = [
            {
                "name": f"Step {index}",
                MODULE: step.args,
                "check_mode": step.check,
                "diff": True,
                "ignore_errors": step.ignore_errors,
            }
            for index, step in enumerate(steps)
        ]
        module_defaults = {"group/cachestack.aws.aws": {"endpoint_url": url, "region": REGION}}
        localhost_play.write_play(playbook, tasks, module_defaults=module_defaults)
        process = localhost_play.run(playbook, json_output=True, base_env=aws_env(url))
        try:
            results = _task_results(process.stdout)
        except (ValueError, KeyError, IndexError) as error:
            pytest.fail(
                f"no task results from ansible-playbook ({error}): rc={process.returncode}\n"
                f"{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
            )
        return PlayRun(process.returncode, process.stdout, process.stderr, results)

    return run


@pytest.fixture
def run_play(moto: str, tmp_path: Path) -> Callable[..., PlayRun]:
    """Return run(*steps): one ansible-playbook process running the module once per step.

    Every task runs with diff on; a step's `check` runs that task in check mode. Tasks of
    one play run in order and share one ansible-playbook start-up (about 3 s here).
    """
    return _runner(moto, tmp_path, "play")


@pytest.fixture(scope="session")
def standin_server() -> Iterator[str]:
    """The AWS stand-in (moto_compat.py) on a free port, its groups available at once."""
    env = {
        **os.environ,
        "STANDIN_CACHE_CREATE_SECONDS": "0",
        "STANDIN_CACHE_MODIFY_SECONDS": "0",
        "STANDIN_CACHE_DELETE_SECONDS": "0",
    }
    process, url = start_moto(command=[sys.executable, str(COMPAT)], env=env)
    try:
        yield url
    finally:
        stop_moto(process)


@pytest.fixture
def standin(standin_server: str) -> str:
    """The stand-in's URL, emptied (and its call log too) before the test."""
    reset_moto(standin_server)
    return standin_server


@pytest.fixture
def standin_elasticache(standin: str) -> Any:
    """A boto3 ElastiCache client on the stand-in, for assertions."""
    return aws_client(standin, "elasticache")


@pytest.fixture
def run_standin_play(standin: str, tmp_path: Path) -> Callable[..., PlayRun]:
    """run_play against the AWS stand-in instead of plain moto."""
    return _runner(standin, tmp_path, "standin-play")
