"""The modules' ansible-test integration targets (tests/integration/targets/), run the way
upstream collections run theirs: ``ansible-test integration --local <target>``, offline.

ansible-test wants the collection at .../ansible_collections/cachestack/aws and reads the
targets' variables from tests/integration/integration_config.yml there, so each run works
on a copy of the tracked files (copy_collection, which tests/static's sanity test uses too),
with the collections our targets use linked beside it, and writes the server's connection
settings (password included) into the copy's integration_config.yml (0600, in the test's
tmp_path: never in the repository). The servers are the other integration tests' own: a
fresh database on the session PostgreSQL 17 (tests/servers/postgresql.py) and the AWS
stand-in (moto with the project's lifecycle rules, tests/integration/aws/moto_compat.py,
default durations: a group is `creating` for 3 s, `modifying` 2 s, `deleting` 2 s).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.aws.conftest import running_standin
from tests.servers.moto import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    REGION,
)
from tests.servers.postgresql import (  # noqa: F401  # pylint: disable=unused-import
    PostgresDatabase,
    postgresql_database,
    postgresql_server,
)
from tests.static.test_collection import copy_collection, run

VENV_BIN = Path(sys.executable).parent
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# What the targets use besides this collection (community.postgresql's postgresql_query;
# amazon.aws and community.aws for the action group our AWS module extends).
DEPENDENCIES = ("amazon/aws", "community/aws", "community/postgresql")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the collection at <tmp>/ansible_collections/cachestack/aws."""
    return copy_collection(
        tmp_path_factory.mktemp("ansible-test"),
        DEPENDENCIES,
        skip=("tests/integration/integration_config.yml",),
    )


def ansible_test_integration(copy: Path, target: str, variables: dict[str, object]) -> None:
    config = copy / "tests/integration/integration_config.yml"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(variables, handle)
    home = copy.parents[2] / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "ANSIBLE_COLLECTIONS_PATH": str(copy.parents[2]),
        "LANG": "C.UTF-8",
    }
    result = run(
        *(VENV_BIN / "ansible-test", "integration", "--local", "--python", PYTHON_VERSION),
        *("--color", "no", "-v", target),
        cwd=copy,
        env=env,
        timeout=600,
    )
    config.unlink()
    output = result.stdout + result.stderr
    for secret in (str(v) for k, v in variables.items() if "password" in k or "secret" in k):
        assert secret not in output, "a secret reached ansible-test's output"
    assert result.returncode == 0, f"ansible-test integration {target}:\n{output[-8000:]}"
    assert f"Running {target} integration test role" in output, output[-3000:]


@pytest.fixture(scope="module")
def aws_standin() -> Iterator[str]:
    with running_standin() as url:
        yield url


def test_postgresql_migrate_target(
    collection: Path,
    postgresql_database: PostgresDatabase,  # noqa: F811
) -> None:
    db = postgresql_database
    ansible_test_integration(
        collection,
        "postgresql_migrate",
        {
            "pg_host": db.host,
            "pg_port": db.port,
            "pg_user": db.user,
            "pg_password": db.password,
            "pg_db": db.name,
        },
    )
    # The target's migrations are in the database it was given.
    with db.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT name FROM items ORDER BY id")
        assert [row[0] for row in cursor.fetchall()] == ["first", "second"]


def test_elasticache_replication_group_target(collection: Path, aws_standin: str) -> None:
    ansible_test_integration(
        collection,
        "elasticache_replication_group",
        {
            "aws_endpoint_url": aws_standin,
            "aws_access_key": FAKE_ACCESS_KEY,
            "aws_secret_key": FAKE_SECRET_KEY,
            "aws_region": REGION,
        },
    )
