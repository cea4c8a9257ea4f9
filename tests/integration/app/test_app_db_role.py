"""The app's own database role (web_app_db_app_user, roles/web_app/tasks/db_role.yml) on a
real PostgreSQL 17 (tests/servers/postgresql.py).

The role's migrate.yml and db_role.yml run through real ansible-playbook processes on
localhost, as on a web host, logged in as a database owner that is no superuser but may
create roles (what the RDS master user is). The app's settings are the ones app.ini would
get (the role's __web_app_db_settings). Then, connected as the app: the page's query runs;
writing, creating a table (temporary too), reading the migration history or a table a later
migration adds are refused. A rerun changes nothing; a new owner password gives the app a
new password; an owner that cannot create roles fails the run with a message that says so
and shows no password.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

from tests import localhost_play
from tests.servers.postgresql import PostgresServer

ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = ROOT / "roles" / "web_app" / "files" / "migrations"

PLAY = [
    {
        "name": "The web_app role's database steps",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Migrate",
                "ansible.builtin.include_role": {
                    "name": "cachestack.aws.web_app",
                    "tasks_from": "migrate",
                },
            },
            {
                "name": "Manage the app's role",
                "ansible.builtin.include_role": {
                    "name": "cachestack.aws.web_app",
                    "tasks_from": "db_role",
                    "public": True,
                },
            },
            {
                "name": "Write the [postgresql] settings app.ini gets",
                "ansible.builtin.copy": {
                    "content": "{{ __web_app_db_settings | to_json }}",
                    "dest": "{{ settings_file }}",
                    "mode": "0600",
                },
                "no_log": True,
            },
        ],
    }
]


class Stack:
    """A database owned by a CREATEROLE owner, and runs of the role's database steps."""

    def __init__(self, server: PostgresServer, tmp_path: Path, createrole: bool = True) -> None:
        self.server = server
        self.tmp = tmp_path
        tag = secrets.token_hex(4)
        self.owner = f"owner_{tag}"
        self.owner_password = secrets.token_urlsafe(18)
        self.app_user = f"app_{tag}"
        self.dbname = f"db_{tag}"
        flags = "CREATEROLE" if createrole else "NOCREATEROLE"
        server.execute(
            f'CREATE ROLE "{self.owner}" LOGIN NOSUPERUSER NOCREATEDB {flags} PASSWORD %s',
            (self.owner_password,),
        )
        server.execute(f'CREATE DATABASE "{self.dbname}" OWNER "{self.owner}"')
        self.base = tmp_path / "base"
        self.migrations = self.base / "migrations"
        self.migrations.mkdir(parents=True)
        for sql in sorted(MIGRATIONS.glob("*.sql")):
            shutil.copy(sql, self.migrations / sql.name)
        self.settings_file = tmp_path / "app-settings.json"
        self.playbook = tmp_path / "play.yml"
        self.playbook.write_text(json.dumps(PLAY, indent=2))
        self.runs = 0

    def cleanup(self) -> None:
        self.server.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        self.server.execute(f'DROP ROLE IF EXISTS "{self.app_user}"')
        self.server.execute(f'DROP ROLE IF EXISTS "{self.owner}"')

    def converge(self, check: bool = False) -> tuple[int, dict[str, Any], str]:
        """Run the role's database steps; return (rc, the JSON report, all output)."""
        self.runs += 1
        extra = {
            # The endpoints contract, as provisioning sets it.
            "cachestack_db_host": self.server.host,
            "cachestack_db_port": self.server.port,
            "cachestack_db_name": self.dbname,
            "cachestack_db_user": self.owner,
            "cachestack_db_password": self.owner_password,
            "cachestack_db_sslmode": "disable",
            "cachestack_cache_host": "127.0.0.1",
            "web_app_db_app_user": self.app_user,
            "web_app_base_dir": str(self.base),
            # The tests' virtualenv stands for the app's (psycopg2 is there).
            "__web_app_python": sys.executable,
            "ansible_python_interpreter": sys.executable,
            "settings_file": str(self.settings_file),
            # configure.yml's result, which migrate.yml reads in a plan: app.ini as it is.
            "__web_app_ini": {"changed": False},
        }
        vars_file = self.tmp / f"vars{self.runs}.json"
        fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(extra, fh)
        options = ["-e", f"@{vars_file}", *(["--check"] * check)]
        proc = subprocess.run(
            localhost_play.command(self.playbook, *options),
            cwd=ROOT,
            env=localhost_play.environment(json_output=True),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        vars_file.unlink()
        try:
            report = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(
                f"no JSON report (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                f"{proc.stderr[-3000:]}"
            ) from exc
        return proc.returncode, report, proc.stdout + proc.stderr

    def converge_ok(self) -> dict[str, Any]:
        rc, report, output = self.converge()
        assert rc == 0, output[-4000:]
        # The tasks rely on the modules' own no_log (login_password, password), not on
        # task-level no_log: neither password may reach the output.
        assert self.owner_password not in output
        assert self.app_settings()["password"] not in output
        return report

    def app_settings(self) -> dict[str, str]:
        return json.loads(self.settings_file.read_text())

    def connect_app(self, password: str | None = None) -> Any:
        settings = self.app_settings()
        return psycopg2.connect(
            host=self.server.host,
            port=self.server.port,
            dbname=self.dbname,
            user=settings["user"],
            password=settings["password"] if password is None else password,
            sslmode="disable",
            connect_timeout=5,
        )

    def connect_owner(self) -> Any:
        return psycopg2.connect(
            host=self.server.host,
            port=self.server.port,
            dbname=self.dbname,
            user=self.owner,
            password=self.owner_password,
            sslmode="disable",
            connect_timeout=5,
        )


@pytest.fixture
def stack(postgresql_server: PostgresServer, tmp_path: Path) -> Any:
    made = Stack(postgresql_server, tmp_path)
    yield made
    made.cleanup()


def refused(conn: Any, sql: str) -> bool:
    """Whether PostgreSQL refuses ``sql`` to this connection for want of a privilege."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    except psycopg2.errors.InsufficientPrivilege:
        conn.rollback()
        return True
    conn.rollback()
    return False


def test_the_app_role_runs_the_page_query_and_nothing_else(stack: Stack) -> None:
    stack.converge_ok()
    settings = stack.app_settings()
    assert settings["user"] == stack.app_user
    assert stack.owner_password not in json.dumps(settings)

    conn = stack.connect_app()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT slow_version()")  # the page's query (db.SLOW_QUERY): 5 s
            assert cur.fetchone()[0].startswith("PostgreSQL 17")
            cur.execute(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
                " FROM pg_roles WHERE rolname = current_user"
            )
            assert cur.fetchone() == (False, False, False, False, False)
        conn.commit()
        # The owner's table of applied migrations.
        assert refused(conn, "SELECT * FROM cachestack_schema_history")
        assert refused(conn, "INSERT INTO cachestack_schema_history (version) VALUES ('9')")
        assert refused(conn, "CREATE TABLE mine (id int)")
        assert refused(conn, "CREATE TEMPORARY TABLE mine (id int)")
        assert refused(conn, "CREATE FUNCTION mine() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    finally:
        conn.close()

    # Another role with no grants of its own (PUBLIC's defaults only) cannot even connect,
    # nor run the page's function.
    other = f"other_{stack.app_user}"
    stack.server.execute(f"CREATE ROLE \"{other}\" LOGIN PASSWORD 'other-password'")
    try:
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            dsn = stack.server.dsn(dbname=stack.dbname, user=other, password="other-password")
            psycopg2.connect(dsn)
    finally:
        stack.server.execute(f'DROP ROLE "{other}"')
    owner = stack.connect_owner()
    try:
        with owner.cursor() as cur:
            cur.execute(
                "SELECT has_function_privilege('public', 'slow_version()', 'EXECUTE'),"
                " has_function_privilege(%s, 'slow_version()', 'EXECUTE')",
                (stack.app_user,),
            )
            assert cur.fetchone() == (False, True)
    finally:
        owner.close()


def test_a_rerun_changes_nothing_and_a_later_table_stays_the_owners(stack: Stack) -> None:
    stack.converge_ok()
    report = stack.converge_ok()
    assert report["stats"]["localhost"]["changed"] == 0, json.dumps(report["stats"])

    (stack.migrations / "V2__later_things.sql").write_text(
        "CREATE TABLE later_things (id int PRIMARY KEY, secret text);\n"
        "INSERT INTO later_things VALUES (1, 'not for the app');\n"
    )
    stack.converge_ok()
    conn = stack.connect_app()
    try:
        assert refused(conn, "SELECT * FROM later_things")
        assert refused(conn, "UPDATE later_things SET secret = ''")
    finally:
        conn.close()
    owner = stack.connect_owner()
    try:
        with owner.cursor() as cur:
            cur.execute("SELECT secret FROM later_things")
            assert cur.fetchone() == ("not for the app",)
    finally:
        owner.close()


def test_a_new_owner_password_gives_the_app_a_new_one(stack: Stack) -> None:
    stack.converge_ok()
    before = stack.app_settings()["password"]
    stack.owner_password = secrets.token_urlsafe(18)
    stack.server.execute(f'ALTER ROLE "{stack.owner}" PASSWORD %s', (stack.owner_password,))

    stack.converge_ok()
    after = stack.app_settings()["password"]
    assert after != before
    stack.connect_app().close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        stack.connect_app(password=before)


def test_a_plan_with_an_owner_password_the_database_does_not_take_yet(stack: Stack) -> None:
    """The host no longer keeps the owner's password, so a plan made before provisioning
    applies a new one cannot read the database: it says so instead of failing."""
    stack.converge_ok()
    old = stack.owner_password
    stack.owner_password = secrets.token_urlsafe(18)  # in the contract, not yet in PostgreSQL
    rc, _report, output = stack.converge(check=True)
    assert rc == 0, output[-4000:]
    assert "does not log in with its new password yet" in output
    assert stack.owner_password not in output and old not in output
    stack.connect_app().close()  # the plan changed nothing


def test_an_owner_that_cannot_create_roles_fails_the_run_and_says_why(
    postgresql_server: PostgresServer, tmp_path: Path
) -> None:
    stack = Stack(postgresql_server, tmp_path, createrole=False)
    try:
        rc, report, output = stack.converge()
        assert rc != 0
        assert report["stats"]["localhost"]["failures"] == 1
        assert "permission denied to create role" in output
        assert "CREATEROLE" in output
        assert stack.owner_password not in output
        assert not stack.settings_file.exists()
    finally:
        stack.cleanup()
