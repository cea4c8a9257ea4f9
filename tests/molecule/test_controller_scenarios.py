"""Every molecule scenario that runs on the controller: sandbox_tls_ca, and the AWS roles
against the AWS stand-in (tests/molecule/scenarios.py says why this is a file of its own)."""

from __future__ import annotations

import pytest

from tests.molecule.scenarios import ON_THE_CONTROLLER, assert_scenario_passes


def test_the_controller_scenarios_are_found() -> None:
    assert {"sandbox_tls_ca", "aws_network", "aws_cache"} <= set(ON_THE_CONTROLLER)


@pytest.mark.parametrize("scenario", ON_THE_CONTROLLER)
def test_molecule_scenario_on_the_controller(scenario: str) -> None:
    assert_scenario_passes(scenario)
