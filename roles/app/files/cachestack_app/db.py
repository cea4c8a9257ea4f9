"""PostgreSQL access: a small thread-safe connection pool and the slow query."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions

from .config import PostgresConfig

log = logging.getLogger("cachestack_app")

# The query the page exists for (the function is created by the database migrations).
SLOW_QUERY = "SELECT slow_version()"


class DatabaseUnavailable(Exception):
    """PostgreSQL could not answer; the message is safe to log (no secrets)."""


class ConnectionPool:
    """A bounded pool: callers wait (up to ``wait_timeout``) for a free connection.

    Connections are opened lazily, in autocommit mode, and thrown away after any
    connection-level error so a restarted server is picked up without a restart.
    """

    def __init__(self, config: PostgresConfig, maxconn: int = 8, wait_timeout: float = 10.0):
        self._kwargs = config.connect_kwargs()
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(maxconn)
        self._wait_timeout = wait_timeout

    def _open(self) -> Any:
        conn = psycopg2.connect(**self._kwargs)
        conn.autocommit = True
        return conn

    @contextmanager
    def connection(self, fresh_only: bool = False) -> Iterator[tuple[Any, bool]]:
        """Yield (connection, fresh). On error the connection is closed, not returned."""
        if not self._slots.acquire(timeout=self._wait_timeout):
            raise DatabaseUnavailable("no free database connection in the pool")
        conn = None
        try:
            with self._lock:
                while self._idle and not fresh_only:
                    candidate = self._idle.pop()
                    if not candidate.closed:
                        conn = candidate
                        break
            fresh = conn is None
            if conn is None:
                conn = self._open()
            try:
                yield conn, fresh
            except BaseException:
                _close_quietly(conn)
                conn = None
                raise
            if conn.closed or conn.status != psycopg2.extensions.STATUS_READY:
                _close_quietly(conn)
            else:
                with self._lock:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    def run(self, sql: str) -> Any:
        """Run one query and return the first column of its first row.

        A failure on a reused connection (the server restarted since) is retried once on
        a new connection, and the other idle ones, as old and likely as dead, are closed.
        Raises DatabaseUnavailable on any database error.
        """
        for attempt in (1, 2):
            fresh = True
            try:
                with self.connection(fresh_only=attempt == 2) as (conn, fresh):
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        row = cur.fetchone()
                    return row[0] if row else None
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                if attempt == 1 and not fresh and _is_connection_lost(exc):
                    self.close()
                    continue
                raise DatabaseUnavailable(_describe(exc)) from None
            except psycopg2.Error as exc:
                raise DatabaseUnavailable(_describe(exc)) from None
        raise DatabaseUnavailable("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the idle connections (those in use close when their error is seen)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)


def _is_connection_lost(exc: Exception) -> bool:
    # QueryCanceled (statement_timeout) is an OperationalError too, but not a lost link.
    return not isinstance(exc, psycopg2.extensions.QueryCanceledError)


def _describe(exc: Exception) -> str:
    """One line about a database error, without the DSN."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{exc.__class__.__name__}: {first}"[:300]


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # already broken; nothing to do
        log.debug("closing a broken database connection failed")


class Database:
    """The app's view of PostgreSQL: the slow query and a readiness probe."""

    def __init__(self, config: PostgresConfig, maxconn: int = 8):
        self.config = config
        self.pool = ConnectionPool(config, maxconn=maxconn, wait_timeout=config.statement_timeout)

    def slow_version(self) -> tuple[str, float]:
        """Run SELECT slow_version(); return (version, seconds taken)."""
        start = time.perf_counter()
        version = self.pool.run(SLOW_QUERY)
        return str(version), time.perf_counter() - start

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless PostgreSQL answers SELECT 1."""
        self.pool.run("SELECT 1")
