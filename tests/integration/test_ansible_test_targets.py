"""The modules' ansible-test integration targets (tests/integration/targets/), run the way
upstream collections run theirs: ``ansible-test integration --local <target>``, offline.

ansible-test wants the collection at .../ansible_collections/cachestack/aws and reads the
targets' variables from tests/integration/integration_config.yml there, so each run works
on a copy of the tracked files (as tests/static's sanity test does), with the collections
our targets use linked beside it, and writes the server's connection settings (password
included) into the copy's integration_config.yml (0600, in the test's tmp_path: never in
the repository). The servers are the other integration tests' own: a fresh database on the
session PostgreSQL 17 (tests/servers/postgresql.py) and the AWS stand-in (moto with the
project's lifecycle rules, tests/integration/aws/moto_compat.py, default durations: a
group is `creating` for 3 s, `modifying` 2 s, `deleting` 2 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
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

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# What the targets use besides this collection (community.postgresql's postgresql_query;
# amazon.aws and community.aws for the action group our AWS module extends).
DEPENDENCIES = ("amazon/aws", "community/aws", "community/postgresql")


def tracked_files() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in listing.stdout.split("\0") if f and (ROOT / f).exists()]


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the collection at <tmp>/ansible_collections/cachestack/aws."""
    tmp = tmp_path_factory.mktemp("ansible-test")
    copy = tmp / "ansible_collections" / "cachestack" / "aws"
    for name in tracked_files():
        if name.startswith("tests/integration/integration_config.yml"):
            continue
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    import ansible_collections.amazon.aws as amazon_aws

    bundled = Path(amazon_aws.__path__[0]).parents[1]
    for dep in DEPENDENCIES:
        (tmp / "ansible_collections" / dep).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "ansible_collections" / dep).symlink_to(bundled / dep)
    return copy


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
    result = subprocess.run(
        [
            *(VENV_BIN / "ansible-test", "integration", "--local", "--python", PYTHON_VERSION),
            *("--color", "no", "-v", target),
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
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
