"""Fixtures for the app's integration tests: real PostgreSQL 17 and Valkey 8 (Redis OSS 8.0
for one path) on loopback, in containers of the Debian 13 servers image (tests/servers/), the
app in-process (werkzeug test client) or under gunicorn."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest

from tests.servers.postgresql import (  # noqa: F401  # pylint: disable=unused-import
    PostgresDatabase,
    PostgresServer,
    free_port,
    postgresql_database,
    postgresql_private_server,
    postgresql_server,
    postgresql_tls_server,
)
from tests.servers.redis import (  # noqa: F401  # pylint: disable=unused-import
    RedisServer,
    redis_cluster,
    redis_oss_cluster,
    redis_private_server,
    redis_server,
    redis_tls_server,
    tls_certificates,
)
from tests.unit.app.web_app_role import render_template

REPO = Path(__file__).resolve().parents[3]
APP_DIR = REPO / "roles" / "web_app" / "files"
# The virtualenv's gunicorn, the one the tests' Python imports.
GUNICORN = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

# Short on purpose: 5 s is not the point here. The app only knows the function's name.
SLOW_SECONDS = 0.5

SLOW_FUNCTION_SQL = f"""
CREATE TABLE IF NOT EXISTS slow_version_calls (id serial PRIMARY KEY, at timestamptz DEFAULT now());
CREATE OR REPLACE FUNCTION slow_version() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO slow_version_calls DEFAULT VALUES;
    PERFORM pg_sleep({SLOW_SECONDS});
    RETURN version();
END
$$;
"""


def install_slow_function(db: PostgresDatabase | PostgresServer) -> None:
    db.execute(SLOW_FUNCTION_SQL)


def slow_calls(db: PostgresDatabase | PostgresServer) -> int:
    """How many times PostgreSQL ran slow_version() (counted inside the database)."""
    return int(db.execute("SELECT count(*) FROM slow_version_calls")[0][0])


def metric(text: str, name: str) -> float:
    """The value of one series in /metrics text (``name`` with its labels, if any)."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def ini(
    pg: PostgresDatabase | PostgresServer,
    redis: Any,
    dbname: str | None = None,
    ttl: int = 300,
    postgresql: dict[str, Any] | None = None,
    redis_extra: dict[str, Any] | None = None,
    cluster: bool = False,
    cache: dict[str, Any] | None = None,
) -> str:
    """INI text for the app pointing at the given servers; ``cache``: more [cache] keys."""
    pg_values: dict[str, Any] = {
        "host": pg.host,
        "port": pg.port,
        "dbname": dbname or getattr(pg, "name", None) or pg.dbname,
        "user": pg.user,
        "password": pg.password,
        "sslmode": "disable",
        "connect_timeout": 2,
        "statement_timeout": 10,
        **(postgresql or {}),
    }
    redis_values: dict[str, Any] = {"host": redis.host, "port": redis.port}
    if getattr(redis, "password", None):
        redis_values["password"] = redis.password
    if getattr(redis, "ca_file", None):
        redis_values["ssl"] = "true"
        redis_values["ssl_ca_certs"] = redis.ca_file
    if cluster:
        redis_values["cluster"] = "true"
    redis_values.update(redis_extra or {})
    lines = ["[postgresql]"]
    lines += [f"{k} = {v}" for k, v in pg_values.items() if v is not None]
    lines += ["", "[redis]"]
    lines += [f"{k} = {v}" for k, v in redis_values.items() if v is not None]
    lines += ["", "[cache]", f"ttl = {ttl}"]
    lines += [f"{k} = {v}" for k, v in (cache or {}).items()]
    lines += [""]
    return "\n".join(lines)


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.ini"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def app_db(postgresql_database: PostgresDatabase) -> PostgresDatabase:  # noqa: F811
    """A fresh database with slow_version() and its call counter."""
    install_slow_function(postgresql_database)
    return postgresql_database


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:  # noqa: F811
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str
    seconds: float


@dataclass
class Gunicorn:
    """gunicorn serving cachestack_app from roles/web_app/files as the app role runs it: its
    gunicorn.conf.py rendered from the role's template with the role's defaults (worker
    class, workers from the CPU count, threads, no preload, ...); only the bind port is the
    test's. PROMETHEUS_MULTIPROC_DIR and CACHESTACK_APP_CONFIG as in the role's unit."""

    config_path: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "gunicorn.conf.py"

    def env(self) -> dict[str, str]:
        metrics_dir = self.workdir / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        return {
            **os.environ,
            "CACHESTACK_APP_CONFIG": str(self.config_path),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }

    def write_conf(self) -> Path:
        text = render_template(
            "gunicorn.conf.py.j2", web_app_gunicorn_bind=f"127.0.0.1:{self.port}"
        )
        self.conf_path.write_text(text)
        return self.conf_path

    def settings(self) -> dict[str, Any]:
        """The rendered configuration's settings, as gunicorn reads them (executed)."""
        namespace: dict[str, Any] = {}
        exec(compile(self.write_conf().read_text(), str(self.conf_path), "exec"), namespace)  # noqa: S102
        return namespace

    def command(self) -> list[str]:
        # The unit runs `gunicorn 'cachestack_app:create_app()'` in the code folder, which
        # holds gunicorn.conf.py; here the rendered file is named, the folder is APP_DIR.
        return [GUNICORN, "-c", str(self.write_conf()), "cachestack_app:create_app()"]

    def start(self, timeout: float = 20) -> None:
        self.process = subprocess.Popen(
            self.command(),
            cwd=APP_DIR,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.process.stdout.read()}")  # type: ignore[union-attr]
            try:
                if get(self.url + "/healthz/live", timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer /healthz/live")

    def stop(self) -> str:
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _stderr = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _stderr = self.process.communicate()
        return out or ""


def get(url: str, method: str = "GET", timeout: float = 30) -> Response:
    """One HTTP request with urllib; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, method=method)  # noqa: S310 - http on loopback
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            body = resp.read().decode()
            status, headers = resp.status, dict(resp.headers.items())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
        status, headers = exc.code, dict(exc.headers.items())
    return Response(status, headers, body, time.perf_counter() - start)


@pytest.fixture(autouse=True)
def plain_psycopg2() -> Iterator[None]:
    """The app's connection pool installs psycopg2's wait callback, process-wide: each
    test leaves psycopg2 as it found it, for the servers' helpers and the next test."""
    yield
    psycopg2.extensions.set_wait_callback(None)


@pytest.fixture
def make_app(tmp_path: Path) -> Any:
    """Build the app in-process for an INI text; returns (app, werkzeug test client)."""
    from cachestack_app import create_app
    from werkzeug.test import Client

    def factory(text: str, breaker_cooldown: float = 0.5) -> tuple[Any, Any]:
        app = create_app(str(write_ini(tmp_path, text)))
        app.cache.breaker.cooldown = breaker_cooldown
        return app, Client(app)

    return factory


@pytest.fixture
def gunicorn_factory(tmp_path: Path) -> Iterator[Any]:
    """Start gunicorn for an INI text: ``gunicorn_factory(ini_text)``; stopped afterwards."""
    started: list[Gunicorn] = []

    def factory(text: str, **kwargs: Any) -> Gunicorn:
        workdir = tmp_path / f"gunicorn{len(started)}"
        workdir.mkdir()
        server = Gunicorn(write_ini(workdir, text), workdir, **kwargs)
        started.append(server)
        server.start()
        return server

    yield factory
    for server in started:
        server.stop()
