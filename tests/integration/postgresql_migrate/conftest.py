"""Run cachestack.aws.postgresql_migrate through real ansible-playbook processes.

(Or, for the tests about the module's own logic, run its file directly: run_module().)

The database is a fresh one on the session PostgreSQL server of tests/servers/postgresql.py
(PostgreSQL 17 from the Debian 13 servers image, in a container on 127.0.0.1,
scram-sha-256). Each run writes a one-task playbook and a 0600 vars file (the password never
appears on a command line) to the test's tmp_path, runs ansible-playbook from the repository
root (its ansible.cfg resolves cachestack.aws from this checkout) with the ansible.posix.json
callback, and returns the task's result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# The fixtures are imported so pytest finds them here.
from tests import localhost_play
from tests.servers.postgresql import (  # noqa: F401  # pylint: disable=unused-import
    PostgresDatabase,
    postgresql_database,
    postgresql_server,
)

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = localhost_play.ANSIBLE_PLAYBOOK
COLLECTIONS = ROOT / ".collections"
MODULE = ROOT / "plugins" / "modules" / "postgresql_migrate.py"


class PlayRun(localhost_play.ModuleRun):
    """A run of the postgresql_migrate module."""

    @property
    def applied(self) -> list[str]:
        return [a["version"] for a in self.result.get("applied", [])]

    @property
    def pending(self) -> list[str]:
        return [p["version"] for p in self.result.get("pending", [])]

    @property
    def warnings(self) -> list[str]:
        return [str(w) for w in self.result.get("warnings", [])]


class Migrate:
    """Writes migration files and runs the module against one database."""

    def __init__(self, db: PostgresDatabase, tmp_path: Path) -> None:
        self.db = db
        self.tmp = tmp_path
        self.dir = tmp_path / "migrations"
        self.dir.mkdir()
        self._n = 0
        self.vars_file = tmp_path / "secret-vars.json"
        fd = os.open(self.vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"pg_password": db.password}, fh)
        if not ANSIBLE_PLAYBOOK.exists():
            raise FileNotFoundError(f"{ANSIBLE_PLAYBOOK} not found: run scripts/setup")
        link = COLLECTIONS / "ansible_collections" / "cachestack" / "aws"
        if link.resolve() != ROOT:
            raise FileNotFoundError(f"{link} does not lead to {ROOT}: run scripts/setup")

    def write(self, name: str, sql: str) -> Path:
        path = self.dir / name
        path.write_text(sql)
        return path

    def args(self, **overrides: Any) -> dict[str, Any]:
        args: dict[str, Any] = {
            "path": str(self.dir),
            "login_host": self.db.host,
            "login_port": self.db.port,
            "login_user": self.db.user,
            "login_password": "{{ pg_password }}",
            "login_db": self.db.name,
            "ssl_mode": "disable",
        }
        args.update(overrides)
        return args

    def start(
        self,
        check: bool = False,
        diff: bool = False,
        environment: dict[str, str] | None = None,
        plain_ansible: bool = False,
        **overrides: Any,
    ) -> tuple[subprocess.Popen[str], Path]:
        """Start ansible-playbook without waiting; finish() collects it.

        ``plain_ansible`` runs without Mitogen (ansible.cfg's strategy), so the module
        gets a new Python of its own, whose import path the task's environment can set.
        """
        self._n += 1
        task: dict[str, Any] = {
            "name": "Migrate",
            "cachestack.aws.postgresql_migrate": self.args(**overrides),
        }
        if environment:
            task["environment"] = environment
        playbook = localhost_play.write_play(self.tmp / f"play{self._n}.yml", [task])
        options = ["-e", f"@{self.vars_file}", *(["--check"] * check), *(["--diff"] * diff)]
        cmd = localhost_play.command(playbook, *options)
        env = localhost_play.environment(json_output=True)
        if plain_ansible:
            env["ANSIBLE_STRATEGY"] = "linear"
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return proc, playbook

    @staticmethod
    def finish(started: tuple[subprocess.Popen[str], Path], timeout: float = 120) -> PlayRun:
        proc, playbook = started
        stdout, stderr = proc.communicate(timeout=timeout)
        try:
            report = json.loads(stdout)
            result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError) as exc:
            raise AssertionError(
                f"no module result from ansible-playbook {playbook} (rc {proc.returncode}):\n"
                f"{stdout[-3000:]}\n{stderr[-3000:]}"
            ) from exc
        return PlayRun(proc.returncode, stdout, stderr, result)

    def run(self, **kwargs: Any) -> PlayRun:
        """Run the module through a real ansible-playbook process."""
        return self.finish(self.start(**kwargs))

    def run_module(self, check: bool = False, diff: bool = False, **overrides: Any) -> PlayRun:
        """Run the module file directly, as Ansible's AnsiballZ wrapper would (0.3 s, not 3).

        The same code path minus Ansible's templating and output masking: the tests that
        are about Ansible itself (check flag, concurrency, secrets in output) use run().
        """
        self._n += 1
        args = self.args(**overrides)
        args["login_password"] = overrides.get("login_password", self.db.password)
        args["_ansible_check_mode"] = check
        args["_ansible_diff"] = diff
        args_file = self.tmp / f"module-args{self._n}.json"
        fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
        env = {**os.environ, "PYTHONPATH": str(COLLECTIONS)}
        proc = subprocess.run(
            [sys.executable, str(MODULE), str(args_file)],
            cwd=self.tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        args_file.unlink()
        try:
            result = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(
                f"no JSON from the module (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            ) from exc
        return PlayRun(proc.returncode, proc.stdout, proc.stderr, result)

    # --- looking at the database --------------------------------------------------------

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        return self.db.execute(sql, params)

    def history(
        self, schema: str = "public", table: str = "cachestack_schema_history"
    ) -> list[tuple]:
        """(version, type) rows of a history table, oldest first."""
        from psycopg2 import sql

        query = sql.SQL("SELECT version, type FROM {} ORDER BY applied_at, version").format(
            sql.Identifier(schema, table)
        )
        conn = self.db.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall()
        finally:
            conn.close()

    def history_versions(self) -> list[str]:
        return [v for v, _t in self.history()]

    def exists(self, relation: str) -> bool:
        return self.query("SELECT to_regclass(%s) IS NOT NULL", (relation,))[0][0]


def module_lock_key(schema: str, table: str) -> int:
    """The advisory lock key the module derives for a history table."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.cachestack.aws.plugins.module_utils._migrate_plan import lock_key

    return lock_key(schema, table)


@pytest.fixture
def migrate(postgresql_database: PostgresDatabase, tmp_path: Path) -> Migrate:  # noqa: F811
    return Migrate(postgresql_database, tmp_path)
