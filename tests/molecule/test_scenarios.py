"""Every molecule scenario that runs its role in a container of the locally built image
(molecule/config.yml), and the checks that every role has a scenario.

Scenarios are discovered (tests/molecule/scenarios.py), so a new role's scenario joins
the suite by existing; every role under roles/ must have one of its name. sandbox_tls_ca
and the AWS roles run on the controller (tests/molecule/test_controller_scenarios.py),
the AWS roles against the AWS stand-in (molecule/_aws_standin/, whose base.yml each aws_*
molecule.yml links to; it has no molecule.yml of its own, so it is not a scenario).
"""

from __future__ import annotations

import pytest

from tests.molecule.scenarios import IN_CONTAINERS, ROOT, SCENARIOS, assert_scenario_passes

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
# Roles that never run on their own: common's main refuses to, it only holds pieces the
# other roles include (tasks_from), so it runs in their scenarios.
INCLUDED_ONLY = {"common"}


def test_scenarios_are_found() -> None:
    assert "sandbox_hosts" in IN_CONTAINERS


def test_every_role_has_a_scenario() -> None:
    assert set(ROLES) >= INCLUDED_ONLY, "an INCLUDED_ONLY role is gone: drop it from the list"
    missing = sorted(set(ROLES) - INCLUDED_ONLY - set(SCENARIOS))
    assert not missing, f"roles without a molecule scenario of the same name: {missing}"


@pytest.mark.parametrize("scenario", IN_CONTAINERS)
def test_molecule_scenario(scenario: str) -> None:
    assert_scenario_passes(scenario)
