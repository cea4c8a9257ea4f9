"""Real PostgreSQL servers on free loopback ports, for tests.

PostgreSQL 17, the version the product ships: Debian 13's ``postgresql-17`` binaries
(``/usr/lib/postgresql/17/bin``) in containers of the ``cachestack-servers`` image (see
``tests/servers/container.py``). ``initdb`` runs once in a container; the server is then
``postgres`` itself as a container's command, logging to ``postgresql.log``. The cluster
lives in a temporary directory mounted at the same path, owned by the container's
non-root uid (the image's ``postgres`` ids when the tests run as root). It has a
password-protected superuser and listens on 127.0.0.1 only (``--network host``;
scram-sha-256 over TCP; the unix socket lives in the private temporary directory).
``stop()`` is a fast shutdown (SIGINT), ``freeze()`` a ``docker pause``.

Use the fixtures from a ``conftest.py``::

    from tests.servers.postgresql import (  # noqa: F401
        postgresql_server,  # session scope: one shared server
        postgresql_database,  # function scope: a fresh database on the shared server
        postgresql_private_server,  # function scope: a server of its own, free to stop
        postgresql_tls_server,  # session scope: TLS too (server.ca_file verifies it)
    )

``postgresql_server`` and ``postgresql_private_server`` yield a :class:`PostgresServer`
(``host``, ``port``, ``user``, ``password``, ``dbname``, ``dsn()``, ``connect()``,
``stop()``, ``start()``, ``kill()``, ``freeze()``, ``thaw()``, ``create_database()``,
``drop_database()``; ``with start_postgresql() as server:`` destroys it at the end).
``postgresql_database`` yields a :class:`PostgresDatabase` (the server plus a database name,
with ``dsn()``/``connect()`` for that database).

Outside pytest, :func:`start_postgresql` returns a started server; call ``destroy()``
when done. A missing docker or servers image raises :class:`PostgresServerError` (run
``scripts/setup``): tests fail, never skip.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import container
from tests.servers.container import free_port

PG_BIN = Path("/usr/lib/postgresql/17/bin")  # inside the servers image
SUPERUSER = "cachestack_admin"
# pg_ctl's shutdown modes, as the signals the postmaster takes them from.
STOP_SIGNALS = {"smart": "SIGTERM", "fast": "SIGINT", "immediate": "SIGQUIT"}


class PostgresServerError(RuntimeError):
    """The test PostgreSQL server could not be set up, started or stopped."""


@dataclass
class PostgresServer(container.ContainerServer):
    """A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1:port.
    (The container's part is :class:`~tests.servers.container.ContainerServer`'s.)"""

    error = PostgresServerError

    basedir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    dbname: str = "postgres"
    settings: dict[str, str] = field(default_factory=dict)
    # (certificate, key) PEM files: the server then also speaks TLS (ssl = on).
    tls: tuple[Path, Path] | None = None
    ca_file: Path | None = None  # the CA that signed the TLS certificate, when known
    server: container.Container | None = field(default=None, repr=False)

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def socketdir(self) -> Path:
        return self.basedir / "run"

    @property
    def logfile(self) -> Path:
        return self.basedir / "postgresql.log"

    def init(self) -> None:
        """Run initdb (in a container) with a password-protected superuser."""
        self.basedir.mkdir(parents=True, exist_ok=True)
        self.basedir.chmod(0o700)
        self.socketdir.mkdir(exist_ok=True)
        self.socketdir.chmod(0o700)
        pwfile = self.basedir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        try:
            container.run_once(
                self.basedir,
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                timeout=120,
                what="initdb",
            )
        except container.ContainerError as exc:
            raise PostgresServerError(f"initdb: {exc}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        tls_conf: dict[str, str] = {}
        if self.tls:
            cert, key = self.basedir / "server.crt", self.basedir / "server.key"
            shutil.copyfile(self.tls[0], cert)
            shutil.copyfile(self.tls[1], key)
            key.chmod(0o600)
            tls_conf = {"ssl": "on", "ssl_cert_file": f"'{cert}'", "ssl_key_file": f"'{key}'"}
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socketdir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "track_functions": "all",
            **tls_conf,
            **self.settings,
        }
        with (self.datadir / "postgresql.conf").open("a") as fh:
            fh.write("\n# cachestack test settings\n")
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")

    @property
    def label(self) -> str:
        return "PostgreSQL"

    def new_container(self) -> container.Container:
        return container.Container(
            what="postgresql",
            directory=self.basedir,
            # postgres itself is the container's process 1; its log goes to a file.
            argv=[
                "sh",
                "-c",
                'exec "$0" -D "$1" >>"$2" 2>&1',
                str(PG_BIN / "postgres"),
                str(self.datadir),
                str(self.logfile),
            ],
            stop_signal=STOP_SIGNALS["fast"],
        )

    def ready(self) -> bool:
        self.connect().close()
        return True

    def start(self, timeout: float = 60) -> None:
        """Start the server (a new container, same directory and port) and wait until
        it accepts connections."""
        self._start(timeout)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server (mode: smart, fast or immediate, as pg_ctl's) and wait for it."""
        if self.server is not None:
            self.server.stop(timeout, STOP_SIGNALS[mode])

    def restart(self) -> None:
        self.stop()
        self.start()

    def dsn(self, dbname: str | None = None, **extra: Any) -> str:
        """A libpq keyword DSN for this server (sslmode=disable unless given)."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": dbname or self.dbname,
            "user": self.user,
            "password": self.password,
            "sslmode": "disable",
            "connect_timeout": 5,
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in params.items())

    def connect(self, dbname: str | None = None, autocommit: bool = True, **extra: Any) -> Any:
        """A psycopg2 connection (autocommit by default)."""
        import psycopg2

        conn = psycopg2.connect(self.dsn(dbname, **extra))
        conn.autocommit = autocommit
        return conn

    def execute(self, sql: str, params: Any = None, dbname: str | None = None) -> list[tuple]:
        """Run one statement in autocommit mode and return its rows (if any)."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str | None = None) -> str:
        name = name or f"db_{secrets.token_hex(4)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class PostgresDatabase:
    """One database on a :class:`PostgresServer`."""

    server: PostgresServer
    name: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def user(self) -> str:
        return self.server.user

    @property
    def password(self) -> str:
        return self.server.password

    def dsn(self, **extra: Any) -> str:
        return self.server.dsn(self.name, **extra)

    def connect(self, autocommit: bool = True, **extra: Any) -> Any:
        return self.server.connect(self.name, autocommit=autocommit, **extra)

    def execute(self, sql: str, params: Any = None) -> list[tuple]:
        return self.server.execute(sql, params, dbname=self.name)


def start_postgresql(
    settings: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None
) -> PostgresServer:
    """Initialise and start a new server on a free loopback port (TLS too if given
    a (certificate, key) pair of PEM files)."""
    basedir = Path(tempfile.mkdtemp(prefix="cachestack-pg-"))
    server = PostgresServer(basedir=basedir, port=free_port(), settings=settings or {}, tls=tls)
    try:
        server.init()
        server.start()
    except BaseException:  # the error carries the logs' tails (wait_ready)
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session. Do not stop it in a test."""
    with start_postgresql() as server:
        yield server


@pytest.fixture
def postgresql_database(postgresql_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh, empty database on the session server, dropped afterwards."""
    if not postgresql_server.is_running():
        postgresql_server.start()
    name = postgresql_server.create_database()
    try:
        yield PostgresDatabase(postgresql_server, name)
    finally:
        postgresql_server.drop_database(name)


@pytest.fixture(scope="session")
def postgresql_tls_server() -> Iterator[PostgresServer]:
    """A session server that also speaks TLS, with a certificate for localhost and
    127.0.0.1 signed by a throwaway CA: its file is ``server.ca_file``."""
    from tests.servers.redis import make_certificates

    certdir = Path(tempfile.mkdtemp(prefix="cachestack-pg-certs-"))
    certs = make_certificates(certdir)
    try:
        with start_postgresql(tls=(certs.cert_file, certs.key_file)) as server:
            server.ca_file = certs.ca_file
            yield server
    finally:
        shutil.rmtree(certdir, ignore_errors=True)


@pytest.fixture
def postgresql_private_server() -> Iterator[PostgresServer]:
    """A server of this test's own: stop and start it freely (fault tests)."""
    with start_postgresql() as server:
        yield server
