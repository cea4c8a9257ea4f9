"""One sandbox for the whole end-to-end session: torn down first, planned with
--check on nothing, then built with site.yml. Tests run in file order and share it."""

from __future__ import annotations

import pytest

from tests.e2e.sandbox import PlaybookRun, ansible_playbook, existing_containers


@pytest.fixture(scope="session")
def plan_from_nothing() -> PlaybookRun:
    teardown = ansible_playbook("playbooks/teardown.yml")
    assert teardown.returncode == 0, teardown.tail()
    assert existing_containers() == []
    return ansible_playbook("site.yml", "--check", "--diff")


@pytest.fixture(scope="session")
def first_deploy(plan_from_nothing: PlaybookRun) -> PlaybookRun:
    run = ansible_playbook("site.yml")
    assert run.returncode == 0, run.tail(120)
    return run
