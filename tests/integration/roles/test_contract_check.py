"""The configure play checks each web host's endpoints contract against its one
declaration (roles/common, entry point contract) before the roles run: a variable missing
or of the wrong type fails naming it, and the secrets stay out of the output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.roles.test_bad_input import RECAP, SECRET, run_role

CONTRACT = {
    "cachestack_db_host": "db.example.internal",
    "cachestack_db_port": 5432,
    "cachestack_db_name": "cachestack",
    "cachestack_db_user": "cachestack",
    "cachestack_db_password": SECRET,
    "cachestack_db_sslmode": "verify-full",
    "cachestack_cache_host": "cache.example.internal",
    "cachestack_cache_port": 6379,
    "cachestack_cache_auth_token": SECRET,
    "cachestack_cache_tls": True,
    "cachestack_cache_cluster_mode": True,
}


def check(tmp_path: Path, variables: dict) -> tuple[int, str]:
    result = run_role(tmp_path, "common", variables, tasks_from="contract")
    output = result.stdout + result.stderr
    assert SECRET not in output
    return result.returncode, output


def test_a_complete_contract_passes(tmp_path: Path) -> None:
    returncode, output = check(tmp_path, CONTRACT)
    assert returncode == 0, output[-3000:]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"cachestack_db_password": None}, "cachestack_db_password"),
        ({"cachestack_cache_host": None}, "cachestack_cache_host"),
        ({"cachestack_db_port": "five"}, "cachestack_db_port"),
        ({"cachestack_cache_tls": "perhaps"}, "cachestack_cache_tls"),
        ({"cachestack_db_sslmode": "sometimes"}, "cachestack_db_sslmode"),
    ],
    ids=str,
)
def test_a_broken_contract_fails_naming_the_variable(
    tmp_path: Path, change: dict, named: str
) -> None:
    variables = {**CONTRACT, **change}
    variables = {key: value for key, value in variables.items() if value is not None}
    returncode, output = check(tmp_path, variables)
    assert returncode != 0, output[-3000:]
    assert named in output, output[-3000:]
    changed = RECAP.search(output)
    assert changed and changed[1] == "0", output[-3000:]
